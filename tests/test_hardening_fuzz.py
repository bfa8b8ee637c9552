"""Fuzz with figures: every public Api method × named classes of garbage, called the way the UI
calls it (the Api method itself, as pywebview does, and a sample over the --serve HTTP path with
the per-run secret). A *failure* is an exception escaping, a non-envelope answer, an "internal"
error (no message a user can act on), a job that dies with one, an uncaught exception in any
thread, or an app that stops working afterwards. The figures are printed and written to
test-artifacts/hardening-fuzz.json."""
import inspect
import json
import math
import threading
import time
import urllib.error
import urllib.request

import pytest
from helpers import ROOT, load

from backend.api import Api

PUBLIC = sorted(name for name, member in inspect.getmembers(Api, inspect.isfunction) if not name.startswith("_"))

GARBAGE = {  # class → values
    "wrong type": [None, True, [], {}, [1, "a"], {"nested": {"deep": [None]}}, "seven", 3],
    "huge number": [10**30, -(10**30), 1e308, 2**63, 2**64 + 1],
    "NaN/inf": [math.nan, math.inf, -math.inf],
    "negative size": [-1, -(2**31), -0.5],
    "1 MB string": ["x" * 1_000_000],
    "emoji": ["🙂" * 2_000 + "👩‍👩‍👧‍👦", "/tmp/" + "🙂" * 120, "🙂" * 120],  # long; a path past NAME_MAX; a name
    "right-to-left": ["\u202eevil\u202c", "مرحبا بالعالم"],
    "NUL": ["a\x00b", "\x00"],
    "lone surrogate": ["\ud800", "ok\udfffok"],
}
VALUES = [(cls, v) for cls, vs in GARBAGE.items() for v in vs]

TEXT = "The quick brown fox jumps over the lazy dog."


def baseline(method, model_dir):
    """Params that work (or fail for a stated reason) on a small loaded model: garbage goes in one field at a time."""
    return {
        "attention": {"text": TEXT},
        "stream_start": {"prompt": TEXT, "generate": 2, "view": {"layer": -1, "head": None}},
        "stream_step": {"steps": 2},
        "stream_view": {"layer": -1, "head": 0},
        "stream_export": {"layer": 0, "head": None},
        "simulate": {"length": 3000, "cache_size": 32, "sinks": 2, "window": 8, "policy": "all"},
        "profile": {"length": 3000, "block_size": 16},
        "profile_presets": {"length": 1000, "block_size": 16},
        "profile_snapshot": {"index": 0},
        "evaluate": {"text": TEXT, "max_tokens": 8, "cache_size": 4, "sinks": 1, "window": 2, "policy": "h2o"},
        "retrieval": {"task": "pass_key", "protocol": "streaming", "policy": ["full", "streaming_llm"], "lengths": [64],
                      "depths": [0.5], "cache_size": 16, "sinks": 2, "window": 4, "chunk": 8},
        "prefill_kept": {"text": TEXT * 3, "methods": ["knorm"], "ratio": 0.5, "layer": 0, "head": 0},
        "load_model": {"source": str(model_dir), "device": "cpu", "precision": "fp32", "trust_remote_code": False},
        "hub_search": {"query": "gpt", "limit": 5},
        "hub_model_info": {"repo_id": "someone/model"},
        "local_models": {"folder": ""},
        "set_token": {"token": ""},
        "save_export": {"filename": "fuzz.txt", "content": "hello", "encoding": "text"},
        "job_status": {"job_id": "simulate-1"},
        "cancel_job": {"job_id": "simulate-1"},
    }.get(method, {})


class KeyRecorder(dict):
    """A params dict that remembers which keys the method looked up (get, [], in)."""

    def __init__(self, *args):
        super().__init__(*args)
        self.seen = set()

    def get(self, key, default=None):
        self.seen.add(key)
        return super().get(key, default)

    def __getitem__(self, key):
        self.seen.add(key)
        return super().__getitem__(key)

    def __contains__(self, key):
        self.seen.add(key)
        return super().__contains__(key)


def cases(method, base, keys):
    """(label, params): the whole params as garbage, a missing field, an extra field, each field as garbage."""
    for cls, v in VALUES:
        yield f"params={cls}", v
    for key in sorted(keys, key=str):
        yield f"missing {key}", {k: x for k, x in base.items() if k != key}
        for cls, v in VALUES:
            yield f"{key}={cls}", {**base, key: v}
    for cls, v in VALUES[:6]:
        yield f"extra field ({cls})", {**base, "unexpected_🙂_field": v}


class Tally:
    def __init__(self):
        self.calls = 0
        self.jobs = 0
        self.failures: list[str] = []
        self.by_method: dict[str, int] = {}

    def fail(self, where, what):
        self.failures.append(f"{where[:120]}: {str(what)[:300]}")


def envelope_problem(result) -> str | None:
    if not isinstance(result, dict) or not isinstance(result.get("ok"), bool):
        return f"not an envelope: {str(result)[:120]}"
    try:
        json.dumps(result, allow_nan=False)
    except (TypeError, ValueError) as exc:
        return f"not JSON-safe: {exc}"
    if not result["ok"]:
        err = result.get("error") or {}
        if not isinstance(err.get("code"), str) or not isinstance(err.get("message"), str) or len(err["message"]) < 8:
            return f"bad error: {err}"
        if err["code"] == "internal":
            return f"internal error: {err['message']}"
    return None


# Jobs whose defaults (a field left out) make a grid of minutes: cancelled after a moment, so the fuzz
# checks their validation and that a cancelled job ends cleanly (their runs are tested elsewhere).
CANCEL_AFTER = {"retrieval": 0.3}


def settle_job(api, result, tally, where, timeout=60.0, cancel_after=None):
    """A started job must end (done, cancelled, or a user-facing error), never with "internal"."""
    job_id = result.get("job_id") if isinstance(result, dict) and result.get("ok") else None
    if not isinstance(job_id, str):
        return
    tally.jobs += 1
    if cancel_after is not None:
        time.sleep(cancel_after)
        api.cancel_job({"job_id": job_id})
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = api.job_status({"job_id": job_id})
        if status.get("state") != "running":
            break
        time.sleep(0.01)
    else:
        api.cancel_job({"job_id": job_id})
        tally.fail(where, f"job {job_id} still running after {timeout} s")
        return
    if status["state"] == "error" and status["error"]["code"] == "internal":
        tally.fail(where, f"job {job_id} died: {status['error']['message']}")


def still_usable(api, tally, where):
    for call, params in (("ping", None), ("model_info", None), ("attention", {"text": "still alive"})):
        out = getattr(api, call)(params)
        if not out.get("ok"):
            tally.fail(where, f"app unusable afterwards: {call} → {out}")
    if not api.model_info().get("loaded"):
        tally.fail(where, "the model was unloaded")


@pytest.fixture(scope="module")
def fuzz_env(tiny_model_dir, tmp_path_factory):
    import backend.api.app as app_module

    mp = pytest.MonkeyPatch()
    mp.setattr(app_module, "EXPORT_DIR", tmp_path_factory.mktemp("exports"))
    mp.setenv("HF_HUB_OFFLINE", "1")  # garbage that looks like a Hub id must not go online
    api = Api()
    assert load(api, tiny_model_dir, device="cpu")["state"] == "done"
    thread_errors = []
    old_hook = threading.excepthook
    threading.excepthook = lambda args: thread_errors.append(f"{args.thread.name}: {args.exc_type.__name__}: {args.exc_value}")
    yield api, tiny_model_dir, thread_errors
    threading.excepthook = old_hook
    api._state.jobs.cancel_all(wait=30)
    mp.undo()


FIGURES = {}


def _record(name, tally, extra=None):
    FIGURES[name] = {"calls": tally.calls, "jobs_started": tally.jobs, "failures": len(tally.failures),
                     "by_method": tally.by_method, **(extra or {})}
    out = ROOT / "test-artifacts"
    out.mkdir(exist_ok=True)
    (out / "hardening-fuzz.json").write_text(json.dumps(FIGURES, indent=1))
    print(f"\n[fuzz figures] {name}: {tally.calls} calls, {tally.jobs} jobs started, {len(tally.failures)} failures")


@pytest.mark.slow
def test_every_method_with_every_garbage_class(fuzz_env):
    api, model_dir, thread_errors = fuzz_env
    tally = Tally()
    for method in PUBLIC:
        base = baseline(method, model_dir)
        recorder = KeyRecorder(base)
        first = getattr(api, method)(recorder)
        settle_job(api, first, tally, f"{method}(baseline)")
        keys = set(recorder.seen) | set(base)
        n_before = tally.calls
        if method == "stream_step":  # a stream to step through
            api.stream_start({"prompt": TEXT * 2})
        for label, params in cases(method, base, keys):
            where = f"{method}({label})"
            try:
                result = getattr(api, method)(params)
            except BaseException as exc:  # noqa: BLE001 - that is the failure being counted
                tally.fail(where, f"exception escaped: {exc!r}")
                continue
            finally:
                tally.calls += 1
            problem = envelope_problem(result)
            if problem:
                tally.fail(where, problem)
            settle_job(api, result, tally, where, cancel_after=CANCEL_AFTER.get(method))
        tally.by_method[method] = tally.calls - n_before
        api._state.jobs.cancel_all(wait=30)
        still_usable(api, tally, method)
    for err in thread_errors:
        tally.fail("thread", err)
    stray = [t.name for t in threading.enumerate() if t.name.startswith("job ") and t.is_alive()]
    if stray:
        tally.fail("threads", f"job threads still alive: {stray}")
    _record("api", tally, {"methods": len(PUBLIC), "garbage_classes": list(GARBAGE)})
    assert tally.calls > 2000
    assert not tally.failures, "\n".join(tally.failures[:40])


def test_a_sample_through_the_serve_http_path(fuzz_env):
    """Same garbage as JSON over POST /api/<method> with the secret, as the browser UI sends it."""
    from backend.serve import make_server

    api, model_dir, thread_errors = fuzz_env
    server, url = make_server(api, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    secret = url.split("secret=", 1)[1]
    port = server.server_address[1]
    tally = Tally()
    try:
        for method in PUBLIC:
            base = baseline(method, model_dir)
            n_before = tally.calls
            sample = [(f"params={cls}", v) for cls, v in VALUES[::2]]
            sample += [(f"{key}={cls}", {**base, key: v}) for key in list(base)[:3] for cls, v in VALUES[::3]]
            for label, params in sample:
                where = f"HTTP {method}({label})"
                body = json.dumps(params).encode()  # NaN/inf go as the NaN/Infinity tokens, surrogates as \\ud800
                req = urllib.request.Request(f"http://127.0.0.1:{port}/api/{method}", data=body, method="POST",
                                             headers={"Content-Type": "application/json", "X-SinkVis-Secret": secret,
                                                      "Origin": f"http://127.0.0.1:{port}"})
                tally.calls += 1
                try:
                    with urllib.request.urlopen(req, timeout=60) as resp:
                        status, result = resp.status, json.loads(resp.read())
                except urllib.error.HTTPError as exc:
                    status, result = exc.code, json.loads(exc.read())
                except Exception as exc:  # noqa: BLE001
                    tally.fail(where, f"transport: {exc!r}")
                    continue
                problem = envelope_problem(result) or (None if status == 200 else f"HTTP {status}")
                if problem:
                    tally.fail(where, problem)
                settle_job(api, result, tally, where)
            tally.by_method[method] = tally.calls - n_before
            api._state.jobs.cancel_all(wait=30)
        still_usable(api, tally, "http")
        if not thread.is_alive():
            tally.fail("server", "the server thread died")
    finally:
        server.shutdown()
        server.server_close()
    for err in thread_errors:
        tally.fail("thread", err)
    _record("http", tally)
    assert tally.calls > 300
    assert not tally.failures, "\n".join(tally.failures[:40])
