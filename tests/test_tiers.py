"""kernels/tiers/ (three placement policies) against the plain-Python reference, plus the invariants of the tier model."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kernels import tiers
import reference_tiers

@pytest.fixture(scope="module")
def smollm2_attention(smollm2_api):
    """SmolLM2-135M's attention on ~150 tokens of held-out English, mean over all layers and heads."""
    from backend.attention.extract import attention_view
    from backend.models.load import DEMO_MODEL_DIR

    text = (DEMO_MODEL_DIR.parent / "eval" / "jargon-heldout.txt").read_text(encoding="utf-8")[:640]
    return attention_view(smollm2_api._state.model, text, aggregate="all_layers")["matrix"]


FIELDS = ("tier", "acc", "access", "hits", "tokens", "blocks", "read_tokens", "promotions", "demotions",
          "moved_tokens", "fetched_tokens", "heat", "timeline_read", "timeline_moved", "snap_read", "snap_moved")
POLICY = st.sampled_from(tiers.POLICIES)


def _settings(draw, policy):
    return dict(policy=policy, margin=draw(st.sampled_from([0.0, 0.01, 0.2])), patience=draw(st.integers(0, 5)),
                reuse=draw(st.integers(0, 12)), window=draw(st.integers(1, 4)), k=draw(st.integers(0, 4)))


def _capacity(draw, n_blocks, n_pinned, kw):
    """Random capacities that are legal: the top tier holds what the policy needs, all tiers every block."""
    top = tiers.room_needed(kw["policy"], n_pinned, n_blocks, kw["window"], kw["k"])
    cap = [max(top, 1) + draw(st.integers(0, 4)), draw(st.integers(0, 6)), draw(st.integers(0, 8)), 0]
    below = sum(cap[1:3]) if kw["policy"] == "topk" else sum(cap)  # top-k keeps only sinks + window in HBM
    cap[3] = max(0, n_blocks - below) + draw(st.integers(0, 3))
    return cap


def _assert_same(kernel, ref):
    for name in FIELDS:
        assert np.array_equal(np.asarray(kernel[name]), np.asarray(ref[name]).reshape(np.shape(kernel[name]))), name
    assert np.array_equal(kernel["snapshots"], np.asarray(ref["snapshots"], np.int8).reshape(kernel["snapshots"].shape))


def _assert_invariants(out, n, B, cap, pinned):
    """At every snapshot: each opened block in exactly one tier, no tier over capacity, sinks in HBM."""
    for step, snap in zip(out["snap_steps"], out["snapshots"]):
        opened = step // B + 1
        assert (snap[:opened] >= 0).all() and (snap[:opened] < 4).all()  # each block in exactly one tier
        assert (snap[opened:] == -1).all()                                # and none before it exists
        assert (np.bincount(snap[:opened], minlength=4) <= cap).all()    # no tier over capacity
        assert (snap[:opened][pinned[:opened]] == 0).all()                # sink blocks stay in HBM
    assert (out["blocks"] == np.bincount(out["tier"], minlength=4)).all() and out["tokens"].sum() == n
    assert out["hits"].sum() == out["access"].sum()
    assert out["timeline_moved"].sum() == out["moved_tokens"]
    assert (out["timeline_read"].sum(axis=0) == out["read_tokens"]).all()


@st.composite
def synthetic_case(draw):
    n = draw(st.integers(1, 260))
    B = draw(st.integers(1, 8))
    n_blocks = -(-n // B)
    sink_count = draw(st.integers(0, 6))
    pinned = np.array([b * B < sink_count for b in range(n_blocks)])
    kw = _settings(draw, draw(POLICY))
    kw.update(sink_count=sink_count, w_sink=draw(st.floats(0, 1)), w_local=draw(st.floats(0.01, 1)),
              w_hh=draw(st.floats(0, 1)), w_bg=draw(st.floats(0, 1)), bg_keys=draw(st.integers(0, 4)),
              seed=draw(st.integers(0, 2**63 - 1)),
              lcum=tiers.local_table(draw(st.floats(0.05, 1.0)), draw(st.integers(1, 40))),
              hh_pos=tiers.heavy_positions(n, draw(st.integers(0, 5)), sink_count, draw(st.integers(0, 99))),
              tau=draw(st.sampled_from([0.001, 0.01, 0.05, 0.2])), half_life=draw(st.integers(1, 6)),
              snap_steps=np.arange(n, dtype=np.int64), buckets=draw(st.integers(1, 40)))
    return n, B, _capacity(draw, n_blocks, int(pinned.sum()), kw), pinned, kw, draw(st.integers(1, 400))


@settings(max_examples=90, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(synthetic_case())
def test_kernel_matches_reference_on_synthetic_traces(case):
    n, B, cap, pinned, kw, chunk = case
    out = tiers.simulate(n, B, cap, pinned, chunk_steps=chunk, **kw)
    _assert_same(out, reference_tiers.simulate(n, B, cap, pinned, **kw))
    _assert_invariants(out, n, B, cap, pinned)


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
    kw = _settings(draw, draw(POLICY))
    kw.update(trace=att, tau=draw(st.sampled_from([0.01, 0.1])), half_life=draw(st.integers(1, 5)),
              snap_steps=np.arange(n, dtype=np.int64), buckets=draw(st.integers(1, 20)))
    return n, B, _capacity(draw, n_blocks, int(pinned.sum()), kw), pinned, kw, draw(st.integers(1, 50))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trace_case())
def test_kernel_matches_reference_on_model_traces(case):
    n, B, cap, pinned, kw, chunk = case
    out = tiers.simulate(n, B, cap, pinned, chunk_steps=chunk, **kw)
    _assert_same(out, reference_tiers.simulate(n, B, cap, pinned, **kw))
    _assert_invariants(out, n, B, cap, pinned)


@pytest.mark.parametrize("policy", tiers.POLICIES)
def test_kernel_matches_reference_on_a_real_models_attention(policy, smollm2_attention):
    """SmolLM2-135M's own attention (mean over layers) on a text, every policy, bit for bit."""
    att = smollm2_attention
    n, B = att.shape[0], 4
    n_blocks = -(-n // B)
    pinned = np.arange(n_blocks) == 0
    cap = [tiers.room_needed(policy, 1, n_blocks, 4, 3) + 3, 2, n_blocks // 4, n_blocks]
    kw = dict(policy=policy, trace=att, window=4, k=3, margin=0.05, patience=2, reuse=8, tau=0.01, half_life=16,
              snap_steps=np.arange(n, dtype=np.int64), buckets=32)
    out = tiers.simulate(n, B, cap, pinned, chunk_steps=37, **kw)
    _assert_same(out, reference_tiers.simulate(n, B, cap, pinned, **kw))
    _assert_invariants(out, n, B, cap, pinned)
    assert out["moved_tokens"] > 0


@pytest.mark.parametrize("policy", tiers.POLICIES)
def test_kernel_matches_reference_across_heat_renormalisations(policy):
    """half_life 1: heat is rescaled every RENORM steps, flushing long-cold blocks to 0."""
    n, B = 3 * tiers.RENORM + 77, 4
    n_blocks = -(-n // B)
    pinned = np.arange(n_blocks) == 0
    kw = dict(policy=policy, sink_count=2, w_sink=0.3, w_local=0.5, w_hh=0.1, w_bg=0.1, bg_keys=3, seed=7,
              lcum=tiers.local_table(0.8, 24), hh_pos=tiers.heavy_positions(n, 4, 2, 7), tau=0.02, half_life=1,
              margin=0.0, patience=0, reuse=40, window=8, k=4, snap_steps=np.array([tiers.RENORM - 1, tiers.RENORM, n - 1]))
    cap = [40, 8, 60, n_blocks]
    kernel = tiers.simulate(n, B, cap, pinned, chunk_steps=1000, **kw)
    _assert_same(kernel, reference_tiers.simulate(n, B, cap, pinned, **kw))
    if policy == "heat":
        assert (kernel["heat"] == 0).any() and kernel["promotions"] > 0
    else:
        assert kernel["moved_tokens"] > 0


def _constrained(n, B):
    n_blocks = n // B
    return n_blocks, [n_blocks // 5, n_blocks // 20, n_blocks // 4, n_blocks]


SYNTH = dict(sink_count=4, w_sink=0.2, w_local=0.6, w_hh=0.15, w_bg=0.05, bg_keys=2, seed=3)


@pytest.mark.parametrize("policy", tiers.POLICIES)
def test_conservation_sinks_and_capacity_on_a_long_run(policy):
    n, B = 40_000, 16
    n_blocks, cap = _constrained(n, B)
    if policy != "heat":
        cap[1] = 0  # the real-system policies do not page into L2
    pinned = np.arange(n_blocks) == 0
    out = tiers.simulate(n, B, cap, pinned, policy=policy, **SYNTH, lcum=tiers.local_table(0.97, 256),
                         hh_pos=tiers.heavy_positions(n, 8, 4, 3), snap_steps=np.linspace(0, n - 1, 64).astype(np.int64),
                         chunk_steps=5000)
    _assert_invariants(out, n, B, cap, pinned)
    assert (out["blocks"][[0, 2, 3]] > 0).all()  # this sequence spills to disk


def test_lru_offload_moves_at_most_twice_the_kv_where_the_heat_rule_thrashes():
    """The Constrained shares (HBM 20%, L2 5%, RAM 25% of the KV), 100,000 tokens."""
    n, B = 100_000, 16
    n_blocks, cap = _constrained(n, B)
    pinned = np.arange(n_blocks) == 0
    kw = dict(**SYNTH, lcum=tiers.local_table(0.97, 256), hh_pos=tiers.heavy_positions(n, 8, 4, 3))
    lru = tiers.simulate(n, B, [cap[0], 0, cap[2], cap[3]], pinned, policy="lru", **kw)
    today = tiers.simulate(n, B, cap, pinned, policy="heat", margin=0.0, patience=0, **kw)
    steady = tiers.simulate(n, B, cap, pinned, policy="heat", **kw)
    assert lru["moved_tokens"] <= 2 * n < 20 * n < today["moved_tokens"]
    assert steady["moved_tokens"] < today["moved_tokens"] / 10  # hysteresis stops the thrashing
    assert lru["promotions"] > 0  # reuse does bring blocks back


def test_top_k_reads_sinks_window_and_k_blocks_per_step():
    n, B, window, k = 20_000, 16, 8, 12
    n_blocks = n // B
    pinned = np.arange(n_blocks) == 0
    cap = [1 + window + k, 0, n_blocks // 4, n_blocks]
    steps = np.arange(0, n, 97, dtype=np.int64)
    out = tiers.simulate(n, B, cap, pinned, policy="topk", window=window, k=k, **SYNTH,
                         lcum=tiers.local_table(0.97, 256), hh_pos=tiers.heavy_positions(n, 8, 4, 3), snap_steps=steps)
    for step, read in zip(steps, out["snap_read"]):
        c = step // B
        in_hbm = B * (1 + window - 1) + (step % B + 1)  # the sink block, full window blocks, the one being written
        offloaded = max(0, c - window)                  # blocks below HBM at this step
        if c < window + 1:
            in_hbm = step + 1
        assert read[0] == in_hbm, step
        assert read[1:].sum() == B * min(k, offloaded), step
    assert (out["blocks"][0] == 1 + window) and out["promotions"] == 0


def test_room_checks():
    with pytest.raises(ValueError):
        tiers.simulate(100, 10, [1, 0, 0, 100], np.arange(10) == 0)  # the top tier only fits the sink
    with pytest.raises(ValueError):
        tiers.simulate(100, 10, [5, 0, 0, 4], np.zeros(10, bool))    # 9 slots for 10 blocks
    with pytest.raises(ValueError):                                   # top-k: sink + window 4 + k 4 > 8
        tiers.simulate(100, 10, [8, 0, 0, 100], np.arange(10) == 0, policy="topk", window=4, k=4)


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
    demo = AutoConfig.from_pretrained(DEMO_MODEL_DIR)  # Llama: 6 layers, 2 KV heads (of 6 query heads) of 32
    assert bytes_per_token(demo, "float32") == 2 * 6 * 2 * 32 * 4


def test_bytes_per_token_llama_with_grouped_query_attention():
    from transformers import LlamaConfig

    from backend.profile.kv_bytes import bytes_per_token

    gqa = LlamaConfig(num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8, hidden_size=4096)
    assert bytes_per_token(gqa, "bfloat16") == 2 * 32 * 8 * 128 * 2        # 128 KiB, not 512 KiB
    wide_heads = LlamaConfig(num_hidden_layers=4, num_attention_heads=8, num_key_value_heads=2, hidden_size=1024,
                             head_dim=256)                                  # head_dim ≠ hidden / heads
    assert bytes_per_token(wide_heads, "float16") == 2 * 4 * 2 * 256 * 2
