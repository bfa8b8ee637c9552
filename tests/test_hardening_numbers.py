"""Numbers: fp16 attention that overflows to inf/NaN is reported as "non_finite" (never drawn as
garbage) on every path that runs the model; traces whose rows are not attention are refused."""
import numpy as np
import pytest
from helpers import load, save_tiny_gpt2, wait_job

from backend.errors import UserError
from backend.eviction import traces
from backend.profile import service

TEXT = "The quick brown fox jumps over the lazy dog."


@pytest.fixture(scope="module")
def hot_model_dir(tmp_path_factory):
    """A 2-layer GPT-2 whose query/key weights are ×1000: q·k ≈ 1e7, past fp16's 65,504 → inf → NaN rows."""
    return save_tiny_gpt2(tmp_path_factory.mktemp("hot-gpt2"), qk_scale=1000.0)


@pytest.fixture(scope="module")
def fp16_api(hot_model_dir):
    from backend.api import Api

    api = Api()
    status = load(api, hot_model_dir, device="cpu", precision="fp16")
    assert status["state"] == "done" and status["result"]["dtype"] == "float16", status
    yield api
    api._state.jobs.cancel_all()


def _is_non_finite(err):
    assert err["code"] == "non_finite", err
    assert "fp32" in err["message"] and "inf/NaN" in err["message"]
    assert err.get("field") == "precision"


def test_quick_attention_reports_the_overflow(fp16_api):
    out = fp16_api.attention({"text": TEXT})
    assert not out["ok"]
    _is_non_finite(out["error"])
    all_layers = fp16_api.attention({"text": TEXT, "aggregate": "all_layers"})
    _is_non_finite(all_layers["error"])


def test_stream_step_reports_the_overflow_and_ends_the_stream(fp16_api):
    assert fp16_api.stream_start({"prompt": TEXT})["ok"]
    out = fp16_api.stream_step({"steps": 4})
    assert not out["ok"]
    _is_non_finite(out["error"])  # was "internal" (a FloatingPointError) before the hardening pass
    state = fp16_api.stream_state()
    assert state["ok"] and state["done"] and "Start" in state["message"]
    assert fp16_api.stream_step()["ok"] and fp16_api.stream_step()["steps"] == []  # no retry over a broken cache
    assert fp16_api.ping()["ok"]


@pytest.mark.parametrize("method", ["simulate", "profile"])
def test_model_trace_jobs_report_the_overflow(fp16_api, method):
    params = {"trace": "model", "text": TEXT}
    if method == "simulate":
        params.update(cache_size=8, sinks=2, window=4)
    else:
        params.update(block_size=4)
    started = getattr(fp16_api, method)(params)
    assert started["ok"], started
    status = wait_job(fp16_api, started["job_id"], timeout=120)
    assert status["state"] == "error", status
    _is_non_finite(status["error"])


def test_the_same_weights_in_fp32_are_finite(hot_model_dir):
    """The error is the precision's, as the message says: fp32 holds these products."""
    from backend.api import Api

    api = Api()
    assert load(api, hot_model_dir, device="cpu", precision="fp32")["state"] == "done"
    out = api.attention({"text": TEXT})
    assert out["ok"], out
    matrix = np.array(out["matrix"])
    assert np.isfinite(matrix).all() and np.allclose(matrix.sum(axis=1), 1.0, atol=1e-4)


def good_attention(n=6, seed=0):
    rng = np.random.default_rng(seed)
    a = np.tril(rng.random((n, n)))
    return a / a.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("how, words", [
    ("zero_row", "row 3 is all zeros"),
    ("half_row", "row 2 sums to 0.5"),
    ("double_row", "row 4 sums to 2"),
    ("negative", "row 1 has a negative weight"),
])
def test_eviction_trace_rows_must_be_attention(how, words):
    a = good_attention()
    if how == "zero_row":
        a[3] = 0.0
    elif how == "half_row":
        a[2] *= 0.5
    elif how == "double_row":
        a[4] *= 2.0
    else:
        a[1, 0], a[1, 1] = -0.5, 1.5
    with pytest.raises(UserError) as info:
        traces.from_attention(a)
    assert info.value.code == "bad_trace" and info.value.field == "trace"
    assert words in info.value.message, info.value.message
    traces.from_attention(good_attention())  # a real one passes
    traces.from_attention(good_attention().astype(np.float32))  # float32 rounding is within the tolerance


@pytest.mark.parametrize("how", ["zero_row", "half_row", "nan"])
def test_profile_trace_rows_must_be_attention(how):
    req = service.parse({"trace": "model", "text": "x", "block_size": 2}, 1024, "test")
    a = good_attention(8)
    if how == "zero_row":
        a[5] = 0.0
    elif how == "half_row":
        a[2] *= 0.5
    else:
        a[6, 1] = np.nan
    with pytest.raises(UserError) as info:
        service.prepare(req, a)
    assert info.value.code == "bad_trace" and info.value.field == "trace"
    assert "sum to 1" in info.value.message or "summing to 1" in info.value.message
    assert service.prepare(req, good_attention(8))[0] == 8
