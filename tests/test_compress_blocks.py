"""The prefill without n × n attention (backend/compress/blocks.py) keeps what the whole-weights prefill kept.

The reference is the previous prefill, kept in tests/reference_compress.py: one eager forward holding
each layer's [H, n, n] weights. Methods without column sums run with sdpa's output and window rows
recomputed from the window's queries; H2O and ObservedAttention run the eager attention in query blocks.
On the demo model and the real SmolLM2-135M.
"""
import numpy as np
import pytest

import reference_compress as ref
from test_compress_reference import assert_same_selection

WITHOUT_SUMS = ["snapkv", "pyramidkv", "adakv_snapkv", "tova", "expected_attention", "adakv_expected_attention",
                "knorm", "keydiff", "streaming_llm", "sliding_window", "random"]
WITH_SUMS = ["h2o", "observed_attention"]


@pytest.fixture(scope="module", params=["demo", "smollm2"])
def model(request):
    from backend.models.bundled import HOW_TO_GET, smollm2_path, smollm2_present
    from backend.models.load import load_model

    if request.param == "smollm2" and not smollm2_present():
        pytest.fail(f"SmolLM2 GGUF missing at {smollm2_path()}: {HOW_TO_GET}")
    return load_model(request.param, device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def ids(model):
    from backend.defaults import bundled_text as bundled_eval_text

    n = min(model.context_length, 600)
    text = " ".join([bundled_eval_text("alice")] * 4)
    ids = model.tokenizer(text, verbose=False)["input_ids"][:n]
    assert len(ids) == n
    return ids


@pytest.mark.parametrize("names", [WITHOUT_SUMS, WITH_SUMS], ids=["sdpa forward", "eager blocks"])
def test_kept_sets_equal_the_whole_weights_prefill(model, ids, names, monkeypatch):
    import torch

    from backend.compress import blocks
    from backend.compress.budgets import Budget, kept_positions
    from backend.compress.methods import METHODS
    from backend.compress.prefill import Prefill, Settings

    monkeypatch.setattr(blocks, "BLOCK_FLOATS", model.spec["heads"] * len(ids) * 100)  # blocks of 100 queries
    used = []
    eager_blocks = blocks.eager_blocks
    monkeypatch.setattr(blocks, "eager_blocks", lambda call, sums: used.append(sums) or eager_blocks(call, sums))
    scorers = {m: METHODS[m] for m in names}
    settings = Settings(sinks=4, window=16)
    ours = Prefill(model, ids, scorers, settings)
    assert used == ([True] * ours.layers if "h2o" in names else [])  # the path the test names was taken
    theirs = ref.eager_prefill_scores(model, ids, scorers, settings)
    for budget in (Budget.of(len(ids), None, 0.5), Budget.of(len(ids), 48, None)):
        for name, method in scorers.items():
            for layer in range(ours.layers):
                got = ours.kept(name, method.budget, budget)[layer]
                want = kept_positions(theirs[name][layer], method.budget, budget, layer, ours.layers)
                for head in range(got.shape[0]):
                    assert_same_selection(got[head], want[head][want[head] >= 0],
                                          theirs[name][layer][head].numpy(), (name, layer, head))
    assert np.isfinite(ours.last_logprobs.numpy()).all()
    with torch.inference_mode():
        plain = model.model(input_ids=torch.tensor([ids]), logits_to_keep=1).logits[0, -1]
    torch.testing.assert_close(ours.last_logprobs, torch.log_softmax(plain.float(), -1), atol=2e-4, rtol=1e-4)


def _layer_call(model, ids, masks):
    """The seam.Call of layer 1 of a forward under `tapped(…, masks)`."""
    import torch

    from backend.attention.seam import tapped

    seen = {}

    def tap(call):
        if call.layer == 1:
            seen["call"] = call
        return call.eager(mask=blocks_mask(call))

    def blocks_mask(call):
        from backend.compress.blocks import mask_rows

        return mask_rows(call, 0, call.query.shape[2])

    with torch.inference_mode(), tapped(tap, masks=masks):
        model.model(input_ids=torch.tensor([ids]), use_cache=False)
    return seen["call"]


def test_blocks_equal_one_block_for_every_mask_form(model, ids, monkeypatch):
    """eager_blocks (small blocks) = the model's eager attention over all queries at once, for sdpa's masks
    (None = causal), eager's additive masks, and a boolean sliding-window mask; sdpa's output too."""
    import dataclasses

    import torch

    from backend.compress import blocks

    ids = ids[:200]
    call = _layer_call(model, ids, "sdpa")
    assert call.mask is None  # the prefill never built an n × n mask
    eager_call = _layer_call(model, ids, "eager")
    assert eager_call.mask.dtype == call.query.dtype and eager_call.mask.shape[-2:] == (200, 200)
    n = len(ids)
    i, j = torch.arange(n)[:, None], torch.arange(n)[None]
    sliding = dataclasses.replace(call, mask=((j <= i) & (j > i - 50))[None, None])
    monkeypatch.setattr(blocks, "BLOCK_FLOATS", call.query.shape[1] * n * 37)  # blocks of 37 queries
    for c in (call, eager_call, sliding):
        whole_out, whole_weights = c.eager(mask=blocks.mask_rows(c, 0, n))
        out, sums = blocks.eager_blocks(c, sums=True)
        torch.testing.assert_close(out, whole_out, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(sums, whole_weights[0].sum(dim=1), atol=1e-4, rtol=1e-5)
        torch.testing.assert_close(blocks.rows(c, n - 64, n), whole_weights[0, :, n - 64:], atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(blocks.fast_output(c), whole_out, atol=1e-5, rtol=1e-4)
    # the sliding window was applied: a key 60 back gets no attention, unlike under the causal mask
    assert float(blocks.rows(sliding, n - 1, n)[:, 0, n - 61].max()) == 0.0
    assert float(blocks.rows(call, n - 1, n)[:, 0, n - 61].min()) > 0.0
