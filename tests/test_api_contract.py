"""Every public Api method answers garbage with the ok/error envelope, and never leaks the token."""
import inspect
import json
import logging

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend.api import Api

PUBLIC = sorted(name for name, member in inspect.getmembers(Api, inspect.isfunction) if not name.startswith("_"))
FAKE_TOKEN = "hf_" + "Q7xZ" * 9

scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40),
                    st.sampled_from(["", "\x00", "\ud800", "‮evil", "🙂" * 50, "<script>alert(1)</script>", "../../etc/passwd",
                                     "demo", "all", "h2o", "synthetic", "model", "-1", "1e309", "x" * 10_000]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                      max_leaves=8)
known_keys = st.sampled_from(["text", "prompt", "source", "layer", "head", "length", "cache_size", "sinks", "window", "policy",
                              "trace", "job_id", "query", "repo_id", "token", "filename", "content", "block_size", "steps",
                              "view", "device", "precision", "index", "preset", "limit"])
garbage = st.one_of(values, st.dictionaries(known_keys, values, max_size=6))


def check_envelope(result):
    assert isinstance(result, dict) and isinstance(result.get("ok"), bool), result
    json.dumps(result, allow_nan=False)  # JSON-safe: no NaN, no objects
    if not result["ok"]:
        err = result["error"]
        assert isinstance(err["code"], str) and isinstance(err["message"], str) and err["message"]


@pytest.fixture(scope="module")
def fuzz_api(tmp_path_factory):
    api = Api()
    api.set_token({"token": FAKE_TOKEN}) if "set_token" in PUBLIC else None
    yield api
    api._state.jobs.cancel_all(wait=30)


@pytest.mark.parametrize("method", PUBLIC)
def test_garbage_gets_an_envelope(fuzz_api, method, monkeypatch, caplog):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # garbage that looks like a Hub id must not go online
    caplog.set_level(logging.DEBUG)
    calls = []

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(garbage)
    def run(params):
        result = getattr(fuzz_api, method)(params)
        calls.append(result)
        check_envelope(result)
        assert FAKE_TOKEN not in json.dumps(result)

    run()
    fuzz_api._state.jobs.cancel_all(wait=30)
    assert fuzz_api.ping()["ok"]  # still usable
    assert FAKE_TOKEN not in caplog.text
    assert calls


def test_no_arguments_is_fine_too():
    api = Api()
    for method in PUBLIC:
        check_envelope(getattr(api, method)())
    api._state.jobs.cancel_all(wait=30)


def test_exports_go_to_sinkvis_export_dir_and_default_to_the_home_folder(api, tmp_path):
    """The tests' exports (an e2e CSV export included) land in conftest's temporary folder, never in
    ~/SinkVis-exports; a user without the variable gets ~/SinkVis-exports."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    saved = api.save_export({"filename": "contract.csv", "content": "a,b\n1,2\n"})
    assert saved["ok"], saved
    assert Path(saved["path"]).parent == Path(os.environ["SINKVIS_EXPORT_DIR"]) != Path.home() / "SinkVis-exports"
    env = {k: v for k, v in os.environ.items() if k != "SINKVIS_EXPORT_DIR"} | {"HOME": str(tmp_path)}
    code = "import backend.api.app as a; print(a.EXPORT_DIR)"
    default = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parents[1], check=True).stdout.strip()
    assert default == str(tmp_path / "SinkVis-exports")
