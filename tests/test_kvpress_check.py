"""tools/kvpress_check.py without kvpress: the split, the JSON exchange with tools/kvpress_side.py (run here as
a subprocess with no press, so kvpress is never imported), kvpress's protocol on the demo model, the table."""
import math
import subprocess
import sys

import pytest
import torch

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1] / "tools"))

from kvpress_check import (PRESSES, compare, kvpress_perplexities, perplexity, request, run_kvpress,  # noqa: E402
                           sinkvis_perplexities, split, table, text_ids)
from kvpress_side import attn_implementation  # noqa: E402

from backend.models.load import DEMO_MODEL_DIR  # noqa: E402


@pytest.fixture(scope="module")
def demo(demo_api):
    return demo_api._state.model


def test_split_keeps_context_then_continuation_and_refuses_a_short_text():
    ids, c, m = split(list(range(50)), 30, 12)
    assert ids == list(range(42)) and (c, m) == (30, 12)
    with pytest.raises(ValueError, match="fewer than 40 \\+ 12"):
        split(list(range(50)), 40, 12)
    with pytest.raises(ValueError):
        split(list(range(50)), 30, 0)


def test_compare_flags_only_rows_past_the_threshold_and_the_table_marks_them():
    kv = {("full", 0.0): 8.0, ("snapkv", 0.5): 10.0, ("knorm", 0.5): 10.0, ("tova", 0.9): 5.0}
    sv = {("full", 0.0): 8.0, ("snapkv", 0.5): 10.15, ("knorm", 0.5): 9.7}
    rows = compare(kv, sv, threshold=2.0)
    assert [(r["method"], r["flag"]) for r in rows] == [("full", False), ("snapkv", False), ("knorm", True)]
    assert rows[1]["diff_percent"] == pytest.approx(1.5) and rows[2]["diff_percent"] == pytest.approx(-3.0)
    lines = table(rows).splitlines()
    assert "> 2%" in lines[4] and "> 2%" not in lines[3] and "-3.00" in lines[4]
    assert compare(kv, sv, threshold=1.0)[1]["flag"]


def test_every_kvpress_press_is_a_sinkvis_method_and_attention_is_named():
    from backend.compress import prefill_methods

    assert set(PRESSES) <= set(prefill_methods())
    assert attn_implementation("observed_attention") == "eager"  # kvpress reads its attention weights
    assert attn_implementation("adakv_snapkv") == "sdpa"  # kvpress's AdaKV asserts it is not eager


def test_the_exchange_scores_kvpress_protocol_and_matches_sinkvis_full_cache(demo):
    ids, c, m = split(text_ids(demo, "jargon"), 96, 24)
    result = run_kvpress(sys.executable, request(DEMO_MODEL_DIR, ids, c, m, [], []))
    assert len(result["full_nll"]) == m and result["runs"] == []
    with torch.inference_mode():  # one forward over context + continuation: the same m log-probs
        lp = torch.log_softmax(demo.model(input_ids=torch.tensor([ids])).logits[0].float(), dim=-1)
    expected = [-float(lp[t - 1, ids[t]]) for t in range(c, c + m)]
    assert result["full_nll"] == pytest.approx(expected, rel=1e-4, abs=1e-4)
    kv = kvpress_perplexities(result)
    sv = sinkvis_perplexities(demo, ids, c, m, ["knorm"], [0.5])
    assert kv[("full", 0.0)] == pytest.approx(sv[("full", 0.0)], rel=1e-4)
    assert math.isfinite(sv[("knorm", 0.5)]) and sv[("knorm", 0.5)] != sv[("full", 0.0)]
    assert [r["method"] for r in compare(kv, sv)] == ["full"]


def test_a_failing_kvpress_side_fails_the_check(demo):
    ids, c, m = split(text_ids(demo, "jargon"), 96, 8)
    with pytest.raises(subprocess.CalledProcessError):  # no kvpress in this environment: the press cannot be made
        run_kvpress(sys.executable, request(DEMO_MODEL_DIR, ids, c, m, ["knorm"], [0.5]))


def test_perplexity_is_exp_of_the_mean_nll():
    assert perplexity([math.log(2.0), math.log(8.0)]) == pytest.approx(4.0)
