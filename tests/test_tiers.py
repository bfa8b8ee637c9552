"""kernels/tiers.py against its plain-Python reference, plus the invariants of the tier model."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kernels import tiers
import reference_tiers

FIELDS = ("tier", "acc", "access", "hits", "tokens", "blocks", "token_steps", "promotions", "demotions",
          "moved_tokens", "heat")


def _capacity(draw, n_blocks, n_pinned):
    """Random capacities that are legal: the top tier holds the sinks plus one, all tiers every block."""
    cap = [n_pinned + 1 + draw(st.integers(0, 4)), draw(st.integers(0, 6)), draw(st.integers(0, 8)), 0]
    cap[3] = max(0, n_blocks - sum(cap)) + draw(st.integers(0, 3))
    return cap


def _assert_same(kernel, ref):
    for name in FIELDS:
        assert np.array_equal(np.asarray(kernel[name]), np.asarray(ref[name])), name
    assert np.array_equal(kernel["snapshots"], np.asarray(ref["snapshots"], np.int8).reshape(kernel["snapshots"].shape))


@st.composite
def synthetic_case(draw):
    n = draw(st.integers(1, 300))
    B = draw(st.integers(1, 8))
    n_blocks = -(-n // B)
    sink_count = draw(st.integers(0, 6))
    pinned = np.array([b * B < sink_count for b in range(n_blocks)])
    snap = sorted(draw(st.sets(st.integers(0, n - 1), max_size=6)))
    kw = dict(sink_count=sink_count, w_sink=draw(st.floats(0, 1)), w_local=draw(st.floats(0.01, 1)),
              w_hh=draw(st.floats(0, 1)), w_bg=draw(st.floats(0, 1)), bg_keys=draw(st.integers(0, 4)),
              seed=draw(st.integers(0, 2**63 - 1)),
              lcum=tiers.local_table(draw(st.floats(0.05, 1.0)), draw(st.integers(1, 40))),
              hh_pos=tiers.heavy_positions(n, draw(st.integers(0, 5)), sink_count, draw(st.integers(0, 99))),
              tau=draw(st.sampled_from([0.001, 0.01, 0.05, 0.2])), half_life=draw(st.integers(1, 6)),
              snap_steps=np.array(snap, np.int64))
    return n, B, _capacity(draw, n_blocks, int(pinned.sum())), pinned, kw, draw(st.integers(1, 400))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(synthetic_case())
def test_kernel_matches_reference_on_synthetic_traces(case):
    n, B, cap, pinned, kw, chunk = case
    _assert_same(tiers.simulate(n, B, cap, pinned, chunk_steps=chunk, **kw),
                 reference_tiers.simulate(n, B, cap, pinned, **kw))


@st.composite
def trace_case(draw):
    n = draw(st.integers(1, 48))
    B = draw(st.integers(1, 6))
    n_blocks = -(-n // B)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    logits = rng.normal(0, draw(st.floats(0.1, 4)), (n, n))
    logits[:, 0] += draw(st.floats(0, 6))  # a sink of varying strength
    att = np.exp(logits) * np.tril(np.ones((n, n)))
    att = (att / att.sum(axis=1, keepdims=True)).astype(np.float32)
    pinned = rng.random(n_blocks) < 0.2
    kw = dict(trace=att, tau=draw(st.sampled_from([0.01, 0.1])), half_life=draw(st.integers(1, 5)),
              snap_steps=np.arange(0, n, max(1, n // 5), dtype=np.int64))
    return n, B, _capacity(draw, n_blocks, int(pinned.sum())), pinned, kw, draw(st.integers(1, 50))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trace_case())
def test_kernel_matches_reference_on_model_traces(case):
    n, B, cap, pinned, kw, chunk = case
    _assert_same(tiers.simulate(n, B, cap, pinned, chunk_steps=chunk, **kw),
                 reference_tiers.simulate(n, B, cap, pinned, **kw))


@pytest.mark.parametrize("seed", [1, 2])
def test_kernel_matches_reference_across_heat_renormalisations(seed):
    """half_life 1: heat is rescaled every RENORM steps, flushing long-cold blocks to 0."""
    n, B = 3 * tiers.RENORM + 77, 4
    n_blocks = -(-n // B)
    pinned = np.arange(n_blocks) == 0
    kw = dict(sink_count=2, w_sink=0.3, w_local=0.5, w_hh=0.1, w_bg=0.1, bg_keys=3, seed=seed,
              lcum=tiers.local_table(0.8, 24), hh_pos=tiers.heavy_positions(n, 4, 2, seed), tau=0.02, half_life=1,
              snap_steps=np.array([tiers.RENORM - 1, tiers.RENORM, n - 1]))
    cap = [40, 8, 60, n_blocks]
    kernel = tiers.simulate(n, B, cap, pinned, chunk_steps=1000, **kw)
    _assert_same(kernel, reference_tiers.simulate(n, B, cap, pinned, **kw))
    assert (kernel["heat"] == 0).any() and kernel["promotions"] > 0


def test_conservation_sinks_and_capacity_on_a_long_run():
    n, B = 40_000, 16
    n_blocks = n // B
    pinned = np.arange(n_blocks) == 0
    cap = np.array([250, 100, 750, 1500])
    snap_steps = np.linspace(0, n - 1, 64).astype(np.int64)
    out = tiers.simulate(n, B, cap, pinned, sink_count=4, w_sink=0.2, w_local=0.6, w_hh=0.15, w_bg=0.05,
                         bg_keys=2, seed=3, lcum=tiers.local_table(0.97, 256),
                         hh_pos=tiers.heavy_positions(n, 8, 4, 3), snap_steps=snap_steps, chunk_steps=5000)
    for step, snap in zip(snap_steps, out["snapshots"]):
        opened = step // B + 1
        assert (snap[:opened] >= 0).all() and (snap[:opened] < 4).all()  # each block in exactly one tier
        assert (snap[opened:] == -1).all()                                # and none before it exists
        assert (np.bincount(snap[:opened], minlength=4) <= cap).all()    # no tier over capacity
        assert snap[0] == 0                                                # the sink block stays in HBM
    assert (out["blocks"] == np.bincount(out["tier"], minlength=4)).all()
    assert (out["blocks"] > 0).all()  # this sequence fills all four tiers
    assert out["tokens"].sum() == n
    assert out["hits"].sum() == out["access"].sum()
    assert out["promotions"] > 0 and out["demotions"] > 0


def test_room_checks():
    with pytest.raises(ValueError):
        tiers.simulate(100, 10, [1, 0, 0, 100], np.arange(10) == 0)  # the top tier only fits the sink
    with pytest.raises(ValueError):
        tiers.simulate(100, 10, [5, 0, 0, 4], np.zeros(10, bool))    # 9 slots for 10 blocks


def test_local_table_never_goes_subnormal():
    lcum = tiers.local_table(0.5, 4096)
    weights = np.diff(lcum)
    assert np.all((weights == 0) | (weights >= np.finfo(np.float64).tiny))


# ---- bytes per token: 2 (K and V) × layers × KV heads × head dim × bytes per element ----

def test_bytes_per_token_gpt2_and_demo_model():
    from transformers import AutoConfig, GPT2Config

    from backend.models.load import DEMO_MODEL_DIR
    from backend.profile.kv_bytes import bytes_per_token

    assert bytes_per_token(GPT2Config(n_layer=12, n_head=12, n_embd=768), "float16") == 2 * 12 * 12 * 64 * 2
    assert bytes_per_token(GPT2Config(n_layer=12, n_head=12, n_embd=768), "float32") == 2 * 12 * 12 * 64 * 4
    demo = AutoConfig.from_pretrained(DEMO_MODEL_DIR)  # 6 layers, 6 heads, width 192
    assert bytes_per_token(demo, "float32") == 2 * 6 * 6 * (192 // 6) * 4


def test_bytes_per_token_llama_with_grouped_query_attention():
    from transformers import LlamaConfig

    from backend.profile.kv_bytes import bytes_per_token

    gqa = LlamaConfig(num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8, hidden_size=4096)
    assert bytes_per_token(gqa, "bfloat16") == 2 * 32 * 8 * 128 * 2        # 128 KiB, not 512 KiB
    wide_heads = LlamaConfig(num_hidden_layers=4, num_attention_heads=8, num_key_value_heads=2, hidden_size=1024,
                             head_dim=256)                                  # head_dim ≠ hidden / heads
    assert bytes_per_token(wide_heads, "float16") == 2 * 4 * 2 * 256 * 2
