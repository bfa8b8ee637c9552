"""Model Hub backend against the local Hub server: the real huggingface_hub client, no mocks of it."""
import json
import logging
import time
from pathlib import Path

import pytest
from huggingface_hub import constants

from backend.api import Api
from backend.errors import Cancelled, UserError
from backend.hub import local, token as hub_token
from backend.hub.download import download_model
from backend.hub.memory import estimate_memory, verdict
from conftest_hub import GATED_TOKEN, point_hub_at
from helpers import load
from hub_server import XSS_IMG, XSS_SCRIPT, make_tiny_bert, make_tiny_gpt2

TINY = "sinkvis/tiny-gpt2"


class Recorder:
    """A Job-like report(): records every event; optionally cancels once a condition holds."""

    def __init__(self, cancel_when=None):
        self.events = []
        self.cancel_when = cancel_when

    def __call__(self, fraction=None, stage=None, **extra):
        self.events.append({"fraction": fraction, "stage": stage, **extra})
        if self.cancel_when and self.cancel_when(extra):
            raise Cancelled()

    def byte_events(self):
        return [e for e in self.events if e.get("bytes_total")]


def source_file(hub, repo_id, name) -> bytes:
    return (hub.repos[repo_id].folder / name).read_bytes()


def gets(hub, name):
    return [r for r in hub.requests if r["method"] == "GET" and r["path"].endswith("/" + name)]


@pytest.fixture
def hub_api(hub_env):
    api = Api()
    yield api
    api._state.jobs.cancel_all()


# -- search ----------------------------------------------------------------------------------------

def test_search_lists_text_generation_models_by_downloads(hub_api):
    out = hub_api.hub_search({"query": ""})
    assert out["ok"] and not out.get("offline")
    ids = [m["id"] for m in out["models"]]
    assert ids[:3] == ["sinkvis/tiny-gpt2", "sinkvis/demo-tiny", "sinkvis/gated-tiny"]
    assert "sinkvis/bert-tiny" not in ids  # fill-mask, filtered by the default task
    first = out["models"][0]
    assert set(first) >= {"id", "author", "downloads", "likes", "tags", "pipeline_tag", "gated"}
    assert first["downloads"] == 1000 and first["likes"] == 10 and first["author"] == "sinkvis"
    gated = next(m for m in out["models"] if m["id"] == "sinkvis/gated-tiny")
    assert gated["gated"] is True
    # Hostile names come back verbatim: escaping them is the UI's job (it inserts text, never HTML).
    assert any(XSS_IMG in m["id"] for m in out["models"])
    assert any(XSS_SCRIPT in m["tags"] for m in out["models"])


def test_search_query_limit_and_task(hub_api):
    assert [m["id"] for m in hub_api.hub_search({"query": "gated"})["models"]] == ["sinkvis/gated-tiny"]
    assert len(hub_api.hub_search({"query": "", "limit": 2})["models"]) == 2
    everything = hub_api.hub_search({"query": "bert", "task": "any"})["models"]
    assert [m["id"] for m in everything] == ["sinkvis/bert-tiny"]
    bad = hub_api.hub_search({"limit": "many"})
    assert not bad["ok"] and bad["error"]["field"] == "limit"


def test_search_offline_is_a_normal_state(offline_hub):
    started = time.monotonic()
    out = Api().hub_search({"query": "gpt2"})
    assert out["ok"] and out["offline"] is True and out["models"] == []
    assert out["message"].startswith("Hub unreachable") and "demo model" in out["message"]
    assert time.monotonic() - started < 5  # no 25 s of client retries


# -- info ------------------------------------------------------------------------------------------

def test_model_info_size_parameters_memory_and_card(hub_api, hub_env):
    out = hub_api.hub_model_info({"repo_id": TINY, "device": "cpu", "precision": "fp32"})
    assert out["ok"], out
    folder = hub_env.repos[TINY].folder
    wanted = ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]
    assert out["size_bytes"] == sum((folder / n).stat().st_size for n in wanted)  # no .bin twin, no msgpack
    assert out["parameters"] == 12_000 * 64 + 128 * 64 + 2 * (12 * 64 * 64 + 13 * 64) + 2 * 64
    assert out["gated"] is False and out["pipeline_tag"] == "text-generation" and out["author"] == "sinkvis"
    memory = out["memory"]
    assert memory["device"] == "cpu" and memory["bytes_per_element"] == 4
    assert memory["needed_bytes"] == int(out["parameters"] * 4 * 1.2)
    # The parts of the need, which the Hub card spells out ("… of weights at 4 B/parameter × 1.2 …").
    assert memory["weights_bytes"] == out["parameters"] * 4 and memory["overhead"] == 1.2
    assert memory["verdict"] == "fits" and memory["available_bytes"] > 0
    assert out["card_excerpt"] == "Tiny GPT-2 A tiny random GPT-2 for tests."  # markup and HTML gone

    gated = hub_api.hub_model_info({"repo_id": "sinkvis/gated-tiny", "device": "cpu"})
    assert gated["ok"] and gated["gated"] is True


def test_memory_verdicts():
    assert verdict(50, 100) == "fits"
    assert verdict(71, 100) == "tight"
    assert verdict(101, 100) == "will_not_fit"
    assert estimate_memory(10**13, "cpu", "fp16")["verdict"] == "will_not_fit"
    assert estimate_memory(1000, "cpu", "auto")["bytes_per_element"] == 4


def test_model_info_errors(hub_api, offline_hub):
    out = hub_api.hub_model_info({"repo_id": TINY})
    assert out["error"]["code"] == "offline"
    assert hub_api.hub_model_info({"repo_id": "has space/x"})["error"]["field"] == "repo_id"
    assert hub_api.hub_model_info({})["error"]["code"] == "bad_input"


def test_model_info_unknown_repo(hub_api):
    out = hub_api.hub_model_info({"repo_id": "nobody/nothing", "device": "cpu"})
    assert out["error"]["code"] == "not_found"
    assert "No model named nobody/nothing on the Hub" in out["error"]["message"]


# -- download --------------------------------------------------------------------------------------

def test_download_reports_progress_and_fetches_only_what_a_causal_lm_needs(hub_env):
    report = Recorder()
    folder = Path(download_model(TINY, None, report))
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
                     "tokenizer_config.json"]
    assert (folder / "model.safetensors").read_bytes() == source_file(hub_env, TINY, "model.safetensors")

    events = report.byte_events()
    done = [e["bytes_done"] for e in events]
    total = events[-1]["bytes_total"]
    assert total == sum((folder / n).stat().st_size for n in names) - (folder / "config.json").stat().st_size
    assert done == sorted(done) and done[-1] == total and len(set(done)) >= 4  # 3.5 MB in 1 MiB steps
    assert all(e["stage"] == "Downloading" and e["bytes_total"] == total for e in events)
    assert any(e["speed_bps"] > 0 for e in events)
    fractions = [e["fraction"] for e in report.events]
    assert fractions == sorted(fractions) and fractions[-1] <= 1
    assert not gets(hub_env, "pytorch_model.bin") and not gets(hub_env, "flax_model.msgpack")
    assert not any(r["auth"] for r in hub_env.requests)  # no token anywhere: none sent

    # A second call finds everything in the cache and moves no bytes.
    hub_env.requests.clear()
    again = Recorder()
    assert download_model(TINY, None, again) == str(folder)
    assert not gets(hub_env, "model.safetensors")


def test_dropped_connection_resumes_with_a_range_request(hub_env):
    cut = 1_500_000
    hub_env.drop_after = {"model.safetensors": cut}
    report = Recorder()
    folder = Path(download_model(TINY, None, report))
    assert (folder / "model.safetensors").read_bytes() == source_file(hub_env, TINY, "model.safetensors")
    ranges = [r["range"] for r in gets(hub_env, "model.safetensors")]
    assert ranges[0] is None and ranges[1].startswith("bytes=")
    start = int(ranges[1][len("bytes="):].rstrip("-"))
    assert 0 < start <= cut  # the rest only (from the last whole chunk written), not the whole file again
    done = [e["bytes_done"] for e in report.byte_events()]
    assert done[-1] == report.byte_events()[-1]["bytes_total"] and max(done) == done[-1]


def test_cancel_stops_the_download_and_a_rerun_keeps_finished_files(hub_env):
    hub_env.throttle_s = 0.02  # ~3 MB/s: slow enough to cancel halfway
    with pytest.raises(Cancelled):
        download_model(TINY, None, Recorder(cancel_when=lambda e: (e.get("bytes_done") or 0) >= 1 << 20))
    blobs = Path(constants.HF_HUB_CACHE) / "models--sinkvis--tiny-gpt2" / "blobs"
    sizes = {p.name: p.stat().st_size for p in blobs.iterdir()}
    assert len(source_file(hub_env, TINY, "model.safetensors")) not in sizes.values()  # weights not finished
    assert not any(name.endswith(".incomplete") for name in sizes)
    assert len(gets(hub_env, "tokenizer.json")) == 1

    hub_env.throttle_s = 0.0
    report = Recorder()
    folder = Path(download_model(TINY, None, report))
    assert (folder / "model.safetensors").read_bytes() == source_file(hub_env, TINY, "model.safetensors")
    assert len(gets(hub_env, "tokenizer.json")) == 1  # finished before the cancel: not fetched again
    assert report.byte_events()[-1]["bytes_total"] == len(source_file(hub_env, TINY, "model.safetensors"))


def test_gated_repo_needs_the_right_token(hub_env):
    with pytest.raises(UserError) as err:
        download_model("sinkvis/gated-tiny", None, Recorder())
    assert err.value.code == "gated"
    assert err.value.message == "sinkvis/gated-tiny is gated: accept its licence on the Hub and paste a token."

    with pytest.raises(UserError) as err:
        download_model("sinkvis/gated-tiny", "hf_WrongToken0123456789abcdefghij", Recorder())
    assert err.value.code == "gated" and "your token has no access" in err.value.message
    assert "hf_WrongToken" not in err.value.message

    folder = Path(download_model("sinkvis/gated-tiny", GATED_TOKEN, Recorder()))
    assert (folder / "model.safetensors").is_file()
    assert any(r["authorization"] == f"Bearer {GATED_TOKEN}" for r in gets(hub_env, "model.safetensors"))


@pytest.mark.parametrize("repo_id, code, text", [
    ("nobody/nothing", "not_found", "No model named nobody/nothing on the Hub — check the spelling."),
    ("sinkvis/bert-tiny", "not_causal", "sinkvis/bert-tiny is a BertForMaskedLM model, not a causal language model"),
    ("not a valid id", "bad_input", "is not a valid model id"),
])
def test_download_clear_errors(hub_env, repo_id, code, text):
    with pytest.raises(UserError) as err:
        download_model(repo_id, None, Recorder())
    assert err.value.code == code and text in err.value.message
    assert not gets(hub_env, "model.safetensors")  # refused before any weights moved


def test_offline_download_uses_the_cache_or_says_hub_unreachable(hub_env, monkeypatch, tmp_path):
    folder = download_model(TINY, None, Recorder())
    home = Path(constants.HF_HOME)
    hub_env.requests.clear()
    point_hub_at(monkeypatch, "http://127.0.0.1:9", home)  # same cache, no Hub (port 9: discard, closed)
    assert download_model(TINY, None, Recorder()) == folder
    with pytest.raises(UserError) as err:
        download_model("sinkvis/demo-tiny", None, Recorder())
    assert err.value.code == "offline" and err.value.message.startswith("Hub unreachable")


# -- local list -------------------------------------------------------------------------------------

def test_local_models_lists_demo_and_cached_causal_models(hub_api, hub_env, monkeypatch, tmp_path):
    demo = make_tiny_gpt2(tmp_path / "demo-model", vocab_size=300)
    monkeypatch.setattr(local, "DEMO_MODEL_DIR", demo)
    download_model(TINY, None, Recorder())
    # A cached non-causal model (fetched with the client directly) must not be listed.
    from huggingface_hub import snapshot_download
    snapshot_download("sinkvis/bert-tiny", cache_dir=constants.HF_HUB_CACHE)

    out = hub_api.local_models()
    assert out["ok"]
    # (SmolLM2 and LM Studio's GGUF files are listed too; tests/test_real_model.py checks those, #11)
    by_id = {m["id"]: m for m in out["models"] if m["source"] in ("demo", "cache")}
    assert list(by_id) == ["demo", TINY]
    assert by_id["demo"]["source"] == "demo" and by_id["demo"]["path"] == str(demo)
    assert by_id[TINY]["source"] == "cache" and by_id[TINY]["model_type"] == "gpt2"
    assert by_id[TINY]["size_bytes"] > 3_000_000 and Path(by_id[TINY]["path"], "config.json").is_file()


def test_local_models_checks_a_picked_folder(hub_api, tmp_path):
    good = make_tiny_gpt2(tmp_path / "mine", vocab_size=300)
    out = hub_api.local_models({"folder": str(good)})
    assert out["ok"] and out["models"][-1]["source"] == "folder" and out["models"][-1]["path"] == str(good)
    bert = hub_api.local_models({"folder": str(make_tiny_bert(tmp_path / "bert"))})
    assert bert["error"]["code"] == "not_causal"
    missing = hub_api.local_models({"folder": str(tmp_path / "nope")})
    assert missing["error"]["code"] == "not_found"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert hub_api.local_models({"folder": str(empty)})["error"]["code"] == "not_a_model"


def test_pick_folder(hub_api):
    out = hub_api.pick_folder()
    assert out["error"]["code"] == "no_dialog" and "Type the folder path" in out["error"]["message"]

    class Window:  # the desktop front's pywebview window, as far as pick_folder uses it
        def create_file_dialog(self, kind):
            return ("/home/me/models/gpt2",)

    import webview  # noqa: F401 - the desktop front is installed; pick_folder imports it lazily
    hub_api._state.window = Window()
    assert hub_api.pick_folder() == {"ok": True, "path": "/home/me/models/gpt2"}


# -- the token ---------------------------------------------------------------------------------------

ENV_TOKEN = "hf_EnvToken0123456789abcdefghijklmn"
FILE_TOKEN = "hf_FileToken0123456789abcdefghijklm"
DOTENV_TOKEN = "hf_DotenvToken0123456789abcdefghijk"
SESSION_TOKEN = "hf_SessionToken0123456789abcdefghij"


def test_token_sources_and_precedence(hub_api, hub_env, monkeypatch, tmp_path):
    monkeypatch.setattr(hub_token, "DOTENV_PATH", tmp_path / ".env")
    assert hub_api.token_status() == {"ok": True, "present": False, "source": None, "masked": None}

    (tmp_path / ".env").write_text(f"# local secrets\nOTHER=1\nexport HF_TOKEN='{DOTENV_TOKEN}'\n")
    assert hub_api.token_status()["source"] == "dotenv"
    Path(constants.HF_TOKEN_PATH).write_text(FILE_TOKEN + "\n")  # what `hf auth login` writes
    assert hub_api.token_status()["source"] == "file"
    monkeypatch.setenv("HF_TOKEN", ENV_TOKEN)
    status = hub_api.token_status()
    assert status["source"] == "env" and status["masked"] == "hf_…klmn"

    out = hub_api.set_token({"token": f"  {SESSION_TOKEN} "})
    assert out == {"ok": True, "token": {"present": True, "source": "session", "masked": "hf_…ghij"}}
    assert hub_api._state.session_token == SESSION_TOKEN
    assert hub_api.set_token({"token": ""})["token"]["source"] == "env"  # cleared: back to the lookup
    assert hub_api.set_token({"token": "has spaces in it"})["error"]["field"] == "token"


def test_a_dotenv_that_is_a_fifo_or_huge_is_ignored_without_hanging(hub_api, hub_env, monkeypatch, tmp_path):
    import os

    dotenv = tmp_path / ".env"
    monkeypatch.setattr(hub_token, "DOTENV_PATH", dotenv)
    os.mkfifo(dotenv)  # nobody writes: an unbounded read would block here forever
    assert hub_api.token_status()["present"] is False
    dotenv.unlink()
    with open(dotenv, "w") as f:  # a token line, then 5 MiB more: over the limit, so not read at all
        f.write(f"HF_TOKEN={DOTENV_TOKEN}\n")
        f.write("#" * (5 * 1024 * 1024))
    assert hub_api.token_status()["present"] is False
    dotenv.write_text(f"HF_TOKEN={DOTENV_TOKEN}\n")
    assert hub_api.token_status()["source"] == "dotenv"


def test_token_never_leaves_the_backend(hub_api, hub_env, monkeypatch, tmp_path, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setattr(hub_token, "DOTENV_PATH", tmp_path / ".env")
    monkeypatch.setenv("HF_TOKEN", ENV_TOKEN)
    wrong = "hf_WrongSessionToken0123456789abcdef"
    answers = [hub_api.token_status(), hub_api.set_token({"token": GATED_TOKEN}),
               hub_api.hub_search({"query": "tiny"}),
               hub_api.hub_model_info({"repo_id": "sinkvis/gated-tiny", "device": "cpu"}),
               hub_api.local_models(), hub_api.set_token({"token": wrong}), hub_api.token_status(),
               hub_api.hub_model_info({"repo_id": "nobody/nothing"}), hub_api.set_token({"token": "x y"})]
    # A load through the lead's Api (gated repo, wrong session token) fails with a message, not the token.
    from backend.hub.token import resolve_token
    assert resolve_token(hub_api._state) == (wrong, "session")
    with pytest.raises(UserError) as err:
        download_model("sinkvis/gated-tiny", resolve_token(hub_api._state)[0], Recorder())
    answers.append({"message": err.value.message})
    assert any(r["authorization"] == f"Bearer {wrong}" for r in hub_env.requests)  # it was really used

    captured = capsys.readouterr()
    haystack = "\n".join([json.dumps(answers, ensure_ascii=False), caplog.text, captured.out, captured.err])
    for secret in (ENV_TOKEN, GATED_TOKEN, wrong):
        assert secret not in haystack
        assert secret[3:] not in haystack  # not even without its hf_ prefix


# -- end to end: search → info → download with progress → load, all through the Api ----------------

def test_search_info_download_load_through_the_api(hub_api, hub_env):
    found = hub_api.hub_search({"query": "tiny-gpt2"})["models"]
    assert [m["id"] for m in found] == [TINY]
    assert hub_api.hub_model_info({"repo_id": TINY, "device": "cpu"})["memory"]["verdict"] == "fits"
    hub_env.throttle_s = 0.005  # slow enough for a poll to see the Downloading stage with bytes
    started = hub_api.load_model({"source": TINY, "device": "cpu", "precision": "fp32"})
    assert started["ok"], started
    seen, deadline = [], time.time() + 120
    while time.time() < deadline:
        status = hub_api.job_status({"job_id": started["job_id"]})
        seen.append(status)
        if status["state"] != "running":
            break
        time.sleep(0.01)
    assert status["state"] == "done", status
    downloading = [s for s in seen if s["stage"] == "Downloading" and s.get("bytes_total")]
    assert downloading and downloading[-1]["bytes_total"] == len(source_file(hub_env, TINY, "model.safetensors")) + sum(
        len(source_file(hub_env, TINY, n)) for n in ("generation_config.json", "tokenizer.json", "tokenizer_config.json"))
    spec = status["result"]["spec"]
    assert status["result"]["source"] == TINY and spec["layers"] == 2 and spec["vocab_size"] == 12_000
    assert hub_api.local_models()["models"][-1]["id"] == TINY


def test_a_hub_model_too_big_for_the_device_is_refused_before_its_weights_download(hub_api, monkeypatch, tmp_path):
    """config.json comes first; a model the device cannot hold (or a config that makes no sense) is refused from
    it, so no weight bytes move. A GPT-2 config of 200 layers × 16,384 wide: ~645 billion parameters."""
    import shutil

    from hub_server import HubServer, Repo

    folder = tmp_path / "huge"
    shutil.copytree(make_tiny_gpt2(tmp_path / "tiny"), folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "n_layer": 200, "n_embd": 16384, "n_head": 128}))
    with HubServer([Repo("big/huge-gpt2", folder)]) as hub:
        point_hub_at(monkeypatch, hub.url, tmp_path / "hf")
        assert load(hub_api, "demo")["state"] == "done"
        status = load(hub_api, "big/huge-gpt2", device="cpu", precision="fp32")
        assert status["state"] == "error" and status["error"]["code"] == "too_big", status
        assert "billion parameters" in status["error"]["message"]
        assert gets(hub, "config.json") and not gets(hub, "model.safetensors") and not gets(hub, "tokenizer.json")
        assert hub_api.model_info()["source"] == "demo"  # the previous model stays in use
