"""The Eviction Sim heatmap's prefill view: prefill_kept (Api) returns backend/compress's kept sets."""
import pytest

from backend.compress import prefill_kept
from backend.eviction import DEFAULTS
from helpers import wait_job

TEXT = DEFAULTS["model_text"]  # the model trace's bundled text


def _run(api, **params):
    job = api.prefill_kept({"text": TEXT, **params})
    assert job["ok"], job
    status = wait_job(api, job["job_id"])
    assert status["state"] == "done", status
    return status["result"], job["settings"]


def test_kept_columns_are_backend_compress_kept_sets(demo_api):
    result, settings = _run(demo_api, methods=["snapkv", "knorm", "streaming_llm", "full"], ratio=0.75, layer=2, head=4)
    assert settings["layer"] == 2 and settings["head"] == 4 and settings["kv_head"] == 1  # 6 query heads share 2 KV heads
    loaded = demo_api._state.model
    ids = loaded.tokenizer(TEXT, add_special_tokens=True, verbose=False)["input_ids"]
    n = result["n"]
    assert n == len(ids) > 100
    direct = prefill_kept(loaded, ids, ["snapkv", "knorm", "streaming_llm", "full"], ratio=0.75)
    rows = {r["method"]: r for r in result["methods"]}
    for m in ("snapkv", "knorm", "streaming_llm", "full"):
        expected = [int(k) for k in direct[m]["kept"][2][1] if k >= 0]
        assert rows[m]["kept"] == expected, m
        assert rows[m]["memory_tokens"] == direct[m]["memory_tokens"]
    assert rows["full"]["kept"] == list(range(n))
    assert len(rows["snapkv"]["kept"]) == len(rows["knorm"]["kept"]) == int(n * 0.25)
    assert rows["snapkv"]["kept"] != rows["knorm"]["kept"]  # another method keeps other keys
    sinks = 4
    assert rows["streaming_llm"]["kept"] == list(range(sinks)) + list(range(n - (int(n * 0.25) - sinks), n))
    other_head, _ = _run(demo_api, methods=["knorm"], ratio=0.75, layer=2, head=1)  # KV head 0
    assert other_head["methods"][0]["kept"] == [int(k) for k in direct["knorm"]["kept"][2][0] if k >= 0]


def test_all_methods_by_default_and_cache_size(demo_api):
    result, settings = _run(demo_api, cache_size=20)
    assert settings["cache_size"] == 20 and settings["ratio"] is None and settings["layer"] == 5
    names = [r["method"] for r in result["methods"]]
    assert names[0] == "full" and {"snapkv", "adakv_snapkv", "expected_attention", "keydiff"} <= set(names)
    lengths = {r["method"]: len(r["kept"]) for r in result["methods"]}
    assert lengths["snapkv"] == 20 and lengths["full"] == result["n"]
    assert next(r for r in result["methods"] if r["method"] == "snapkv")["note"]  # its window is more than C = 20


@pytest.mark.parametrize("params, field", [({"methods": ["lru"]}, "methods"), ({"ratio": 1.0}, "ratio"),
                                           ({"layer": 6}, "layer"), ({"head": 6}, "head"), ({"cache_size": 0}, "cache_size"),
                                           ({"text": ""}, "text"), ({"text": "word " * 400}, "text")])
def test_bad_input_names_the_field(demo_api, params, field):
    out = demo_api.prefill_kept({"text": TEXT, **params})
    assert not out["ok"] and out["error"]["field"] == field, out


def test_needs_a_model(api):
    out = api.prefill_kept({"text": TEXT})
    assert not out["ok"] and out["error"]["code"] == "no_model"
