"""Secrets: with a fake HF token set three ways (HF_TOKEN, a .env file, set_token), the full token
never appears in any Api response (every public method, with inputs that echo it back), any log
line, any job error, an exported file, a --serve HTTP response, or the CLI's stdout/stderr."""
import json
import logging
import subprocess
import sys
import threading
import urllib.request

import pytest
from helpers import ROOT, load, wait_job
from test_hardening_fuzz import PUBLIC, baseline

import backend.api.app as app_module
import backend.hub.token as token_module
from backend.api import Api

ENV_TOKEN = "hf_EnvTokenAbCdEfGhIjKlMnOpQrStUvWxYz0123"
DOTENV_TOKEN = "hf_DotEnvTokenZyXwVuTsRqPoNmLkJiHgFe9876"
SESSION_TOKEN = "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5555"
ALL = (ENV_TOKEN, DOTENV_TOKEN, SESSION_TOKEN)


def leaks(text: str) -> list[str]:
    return [t for t in ALL if t in text]


@pytest.fixture
def secret_env(hub_env, tmp_path, monkeypatch, caplog):
    """The local Hub (so Hub calls really send the token), a .env, HF_TOKEN, and exports in tmp."""
    dotenv = tmp_path / ".env"
    dotenv.write_text(f"HF_TOKEN={DOTENV_TOKEN}\n")
    monkeypatch.setattr(token_module, "DOTENV_PATH", dotenv)
    monkeypatch.setattr(app_module, "EXPORT_DIR", tmp_path / "exports")
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="sinkvis")
    return hub_env


def echo_inputs(token):
    """Inputs that tempt a method to echo the token back in an error or a result."""
    return [{"repo_id": token}, {"repo_id": f"sinkvis/{token}"}, {"source": token}, {"source": f"/no/{token}"},
            {"folder": f"/no/such/{token}"}, {"text": token}, {"prompt": token}, {"query": token},
            {"filename": f"{token}.txt", "content": token}, {"job_id": token}, {"token": token + " x"}]


@pytest.mark.slow
@pytest.mark.parametrize("source", ["env", "dotenv", "session"])
def test_token_never_leaves_through_the_api(secret_env, tiny_model_dir, monkeypatch, caplog, source):
    token = {"env": ENV_TOKEN, "dotenv": DOTENV_TOKEN, "session": SESSION_TOKEN}[source]
    if source == "env":
        monkeypatch.setenv("HF_TOKEN", ENV_TOKEN)
    api = Api()
    if source == "session":
        assert api.set_token({"token": SESSION_TOKEN})["ok"]
    status = api.token_status()
    assert status["present"] and status["source"] == source and status["masked"] == token[:3] + "…" + token[-4:]
    assert load(api, tiny_model_dir, device="cpu")["state"] == "done"
    answers = []
    for method in PUBLIC:
        calls = [baseline(method, tiny_model_dir), None] + echo_inputs(token)
        if method == "hub_model_info":
            calls += [{"repo_id": "sinkvis/gated-tiny"}, {"repo_id": "sinkvis/tiny-gpt2"}]  # the token really goes out
        if method == "load_model":
            calls += [{"source": "sinkvis/gated-tiny"}]
        for params in calls:
            out = getattr(api, method)(params)
            answers.append(json.dumps(out))
            if out.get("ok") and isinstance(out.get("job_id"), str):
                answers.append(json.dumps(wait_job(api, out["job_id"], timeout=120)))
    api._state.jobs.cancel_all(wait=10)
    assert any("gated" in a or "bad_token" in a for a in answers)  # the Hub saw the token and refused it
    blob = "\n".join(answers)
    found = [a[max(0, a.find(t) - 300): a.find(t) + 60] for a in answers for t in ALL if t in a]
    assert not found, found[:3]
    assert not leaks(caplog.text), "token in a log line"
    exported = list((app_module.EXPORT_DIR).glob("*")) if app_module.EXPORT_DIR.exists() else []
    for f in exported:
        assert not leaks(f.read_bytes().decode("utf-8", "replace")) or f.name.startswith("hf_"), f


def test_exports_of_app_state_hold_no_token(secret_env, tiny_model_dir, monkeypatch):
    """What the UI exports (app info, stream export, a simulation) written through save_export."""
    monkeypatch.setenv("HF_TOKEN", ENV_TOKEN)
    api = Api()
    api.set_token({"token": SESSION_TOKEN})
    assert load(api, tiny_model_dir, device="cpu")["state"] == "done"
    api.stream_start({"prompt": "hello there"})
    api.stream_step({"steps": 3})
    sim = wait_job(api, api.simulate({"length": 2000})["job_id"])
    for name, payload in (("info.json", api.app_info()), ("stream.json", api.stream_export()), ("sim.json", sim)):
        saved = api.save_export({"filename": name, "content": json.dumps(payload)})
        assert saved["ok"], saved
        assert not leaks((app_module.EXPORT_DIR / name).read_text())


def test_exception_messages_are_redacted():
    from backend.envelope import error_from_exception
    from backend.secrets import remember_secret

    remember_secret(SESSION_TOKEN)
    for exc in (RuntimeError(f"Authorization: Bearer {SESSION_TOKEN}"), OSError(2, "no file", f"/x/{ENV_TOKEN}"),
                ValueError(f"token={DOTENV_TOKEN}")):
        out = error_from_exception(exc)
        assert out["error"]["code"] == "internal" and not leaks(json.dumps(out)), out


def test_serve_responses_hold_no_token(secret_env, tiny_model_dir, monkeypatch):
    from backend.serve import make_server

    monkeypatch.setenv("HF_TOKEN", ENV_TOKEN)
    api = Api()
    server, url = make_server(api, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    port, secret = server.server_address[1], url.split("secret=", 1)[1]
    seen = []
    try:
        for method, params in [("token_status", {}), ("app_info", {}), ("set_token", {"token": SESSION_TOKEN}),
                               ("token_status", {}), ("hub_model_info", {"repo_id": "sinkvis/gated-tiny"}),
                               ("hub_search", {"query": "tiny"}), ("local_models", {"folder": f"/no/{SESSION_TOKEN}"}),
                               ("load_model", {"source": f"/no/{ENV_TOKEN}"})]:
            req = urllib.request.Request(f"http://127.0.0.1:{port}/api/{method}", data=json.dumps(params).encode(),
                                         headers={"X-SinkVis-Secret": secret}, method="POST")
            with urllib.request.urlopen(req, timeout=60) as resp:
                seen.append(resp.read().decode() + str(resp.headers))
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as resp:
            seen.append(resp.read().decode("utf-8", "replace"))
    finally:
        server.shutdown()
        server.server_close()
    assert '"source": "session"' in seen[3]
    assert not leaks("\n".join(seen))


@pytest.mark.parametrize("argv", [["attention", "--text", "hello " + ENV_TOKEN, "--json"],
                                  ["attention", "--model", f"/no/{ENV_TOKEN}", "--text", "x"]])
def test_cli_output_holds_no_token(secret_env, argv, tmp_path):
    import os

    env = {**os.environ, "HF_TOKEN": ENV_TOKEN}
    out = subprocess.run([sys.executable, str(ROOT / "main.py"), *argv], capture_output=True, text=True, timeout=300,
                         cwd=tmp_path, env=env)
    assert out.stdout or out.stderr
    assert not leaks(out.stdout + out.stderr), (out.stdout[-500:], out.stderr[-500:])
