"""Issue 31, user code: rule and score files run only in killable worker processes (backend/usercode).

Each test attacks the app with one file and then checks that the app is still whole: the
model still loaded and a small simulation still running (still_works)."""
import os
import subprocess
import sys
import textwrap
import time

import pytest

from backend.api import Api
from backend.compress import user as compress_user
from helpers import ROOT, load, wait_job

EXAMPLES = ROOT / "examples" / "policies"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    folder = tmp_path_factory.mktemp("policies")
    before = os.environ.get("SINKVIS_POLICY_DIR")
    os.environ["SINKVIS_POLICY_DIR"] = str(folder)
    api = Api()
    assert load(api, "demo")["state"] == "done"
    api.folder = folder
    yield api
    api._state.jobs.cancel_all(wait=30)
    if api._state.policies is not None:
        api._state.policies.unpublish()  # Evaluate's and the prefill lists are process-wide: leave them as they were
    compress_user.publish({})
    if before is None:
        os.environ.pop("SINKVIS_POLICY_DIR", None)
    else:
        os.environ["SINKVIS_POLICY_DIR"] = before


def still_works(api):
    assert api.model_info()["loaded"] is True
    job = api.simulate({"policy": "lru", "length": 3000, "cache_size": 64, "window": 16})
    status = wait_job(api, job["job_id"], timeout=60)
    assert status["state"] == "done", status
    assert status["result"]["results"][0]["policy"] == "lru"


def write(folder, name, body):
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


def prefill(api, policies, **params):
    job = api.evaluate({"protocol": "prefill", "max_tokens": 120, "context_tokens": 90, "continuation_tokens": 20,
                        "ratio": 0.5, "policy": policies, **params})
    assert job["ok"], job
    return job


# ---------- 3: module-level code cannot end or hang the app ----------

@pytest.mark.parametrize("body, code, line", [
    ("import os\nNAME = 'bye'\nos._exit(0)\n", "load_crashed", None),
    ("import sys\nNAME = 'bye'\nsys.exit(3)\n", "import_error", 3),
])
def test_a_file_that_exits_while_loading_is_a_named_error(app, tmp_path, body, code, line):
    path = tmp_path / "exits.py"
    path.write_text(body)
    out = app.load_policy_file({"path": str(path), "trust": True})
    assert out["ok"] is False and out["error"]["code"] == code, out
    assert str(path) in out["error"]["message"]
    if line:
        assert f"line {line}" in out["error"]["message"]
    still_works(app)


def test_an_endless_file_in_the_policies_folder_is_a_named_timeout(app, monkeypatch):
    monkeypatch.setenv("SINKVIS_LOAD_LIMIT", "2")
    endless = write(app.folder, "endless", "NAME = 'endless'\nwhile True:\n    pass\n")
    good = write(app.folder, "good", (EXAMPLES / "lru.py").read_text())
    try:
        started = time.monotonic()
        listing = app.reload_policies()
        assert time.monotonic() - started < 30
        assert [e["code"] for e in listing["errors"]] == ["load_timeout"] and listing["errors"][0]["file"] == str(endless)
        assert "lru_rule" in [p["name"] for p in listing["policies"]]  # the file after it still loaded
        still_works(app)
    finally:
        endless.unlink()
        good.unlink()
        app.reload_policies()


# ---------- 4: a score that is no plain function ----------

def test_a_partial_or_callable_score_loads_beside_the_other_files(app):
    write(app.folder, "partial", """
        import functools
        NAME = "partial_norm"
        def norm(layer, settings, p):
            return layer.keys.norm(p=p, dim=-1)
        score = functools.partial(norm, p=2)
    """)
    write(app.folder, "callable", """
        NAME = "callable_norm"
        class Norm:
            def __call__(self, layer, settings):
                return layer.values.norm(dim=-1)
        score = Norm()
    """)
    try:
        listing = app.reload_policies()
        assert listing["errors"] == []
        assert {p["name"] for p in listing["prefill_methods"]} == {"partial_norm", "callable_norm"}
        status = wait_job(app, prefill(app, ["partial_norm", "callable_norm", "knorm"])["job_id"])
        assert status["state"] == "done", status
        rows = {r["policy"]: r for r in status["result"]["results"]}
        assert rows["partial_norm"]["memory_tokens"] == 45 and rows["callable_norm"]["memory_tokens"] == 45
        still_works(app)
    finally:
        for name in ("partial", "callable"):
            (app.folder / f"{name}.py").unlink()
        app.reload_policies()


# ---------- 5: a score cannot rewrite the shared cache ----------

def test_a_score_that_rewrites_the_layer_changes_no_other_result(app, tmp_path):
    path = write(tmp_path, "vandal", """
        NAME = "vandal"
        def score(layer, settings):
            layer.keys.mul_(1e4)
            layer.values.mul_(-1e4)
            return layer.keys.norm(dim=-1)
    """)
    assert app.load_policy_file({"path": str(path), "trust": True})["ok"]
    clean = wait_job(app, prefill(app, ["knorm"])["job_id"])
    attacked = wait_job(app, prefill(app, ["vandal", "knorm"])["job_id"])
    assert clean["state"] == attacked["state"] == "done", attacked
    rows = {r["policy"]: r for r in attacked["result"]["results"]}
    want = {r["policy"]: r for r in clean["result"]["results"]}
    for name in ("full", "knorm"):
        assert rows[name]["perplexity"] == want[name]["perplexity"], name
    still_works(app)


# ---------- 2 and 9: Cancel ends a score that never returns, and what it started ----------

def test_cancel_ends_a_sleeping_score_and_its_subprocess_within_2_s(app, tmp_path):
    marker = tmp_path / "started"
    path = write(tmp_path, "sleeper", f"""
        import subprocess, sys, time
        NAME = "sleeper"
        def score(layer, settings):
            child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
            open({str(marker)!r}, "w").write(str(child.pid))
            time.sleep(3600)
    """)
    assert app.load_policy_file({"path": str(path), "trust": True})["ok"]
    job = prefill(app, ["sleeper"])
    deadline = time.monotonic() + 120
    while not (marker.exists() and marker.read_text()):
        assert time.monotonic() < deadline, wait_job(app, job["job_id"], timeout=1)
        time.sleep(0.05)
    grandchild = int(marker.read_text())
    started = time.monotonic()
    assert app.cancel_job({"job_id": job["job_id"]})["ok"]
    status = wait_job(app, job["job_id"], timeout=10)
    assert status["state"] == "cancelled" and time.monotonic() - started < 2.0, status
    while _alive(grandchild) and time.monotonic() - started < 2.0:
        time.sleep(0.05)
    assert not _alive(grandchild)
    still_works(app)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"  # a zombie waiting for init to reap it is gone
    except OSError:
        return False


@pytest.mark.parametrize("name, body, code, line", [
    ("exiter", "import os\nNAME = 'exiter'\ndef score(layer, settings):\n    os._exit(0)\n", "score_crashed", 3),
    ("meta", "import torch\nNAME = 'meta'\ndef score(layer, settings):\n"
             "    return torch.empty(layer.kv_heads, layer.n, device='meta')\n", "bad_score", 3),
    ("stuck", "NAME = 'stuck'\ndef score(layer, settings):\n    while True:\n        pass\n", "score_timeout", 2),
])
def test_a_score_that_exits_returns_meta_or_never_ends_is_named(app, tmp_path, monkeypatch, name, body, code, line):
    monkeypatch.setenv("SINKVIS_SCORE_LIMIT", "1")
    path = tmp_path / f"{name}.py"
    path.write_text(body)
    assert app.load_policy_file({"path": str(path), "trust": True})["ok"]
    status = wait_job(app, prefill(app, [name])["job_id"], timeout=120)
    assert status["state"] == "error" and status["error"]["code"] == code, status
    assert f"{path}, line {line}:" in status["error"]["message"]
    still_works(app)


# ---------- 10: the Python Api in a plain script, without `if __name__ == "__main__":` ----------

def test_a_script_without_a_main_guard_runs_a_rule(tmp_path):
    script = tmp_path / "plain.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from backend.api import Api
        api = Api()
        loaded = api.load_policy_file({{"path": {str(EXAMPLES / "lru.py")!r}, "trust": True}})
        job = api.simulate({{"policy": "lru_rule", "length": 3000, "cache_size": 64, "window": 16}})
        while api.job_status({{"job_id": job["job_id"]}})["state"] == "running":
            time.sleep(0.05)
        status = api.job_status({{"job_id": job["job_id"]}})
        print("RESULT", status["state"], status["result"]["results"][0]["policy"])
    """))
    env = {**os.environ, "SINKVIS_POLICY_DIR": str(tmp_path / "none")}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, env=env,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count("RESULT") == 1 and "RESULT done lru_rule" in out.stdout, out.stdout + out.stderr[-2000:]
