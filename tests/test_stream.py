"""Live attention stream: streamed rows equal one full forward, sinks/heavy hitters per DESIGN.md, Api envelope."""
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from backend.api import Api
from backend.attention import sinks as S
from backend.attention.stream import StreamSession, state_bound
from backend.models.loaded import LoadedModel

DEMO = Path(__file__).resolve().parents[1] / "assets" / "demo-model"
TEXT = "The quick brown fox jumps over the lazy dog. " * 3


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models gain nothing from threads, and on a busy 2-core machine OpenMP threads spin-wait."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class ByteTokenizer:
    """Bytes as token ids (0..255), no BOS: enough to drive a random-init model."""
    eos_token_id = None

    def __call__(self, text, add_special_tokens=True, verbose=True):  # transformers' keywords that SinkVis passes
        return {"input_ids": list(text.encode("utf-8"))}

    def decode(self, ids):
        return bytes(ids).decode("utf-8", errors="replace")


def tiny(kind="gpt2", context=64) -> LoadedModel:
    from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig

    torch.manual_seed(0)
    if kind == "gpt2":
        config = GPT2Config(n_layer=2, n_head=4, n_embd=64, vocab_size=256, n_positions=context, bos_token_id=0, eos_token_id=0)
    else:  # Llama-style: rotary positions and grouped-query attention (2 KV heads for 4 query heads)
        config = LlamaConfig(num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, hidden_size=64,
                             intermediate_size=128, vocab_size=256, max_position_embeddings=context,
                             bos_token_id=0, eos_token_id=0)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="eager").eval()
    spec = {"layers": 2, "heads": 4, "kv_heads": config.num_key_value_heads if kind != "gpt2" else 4, "context_length": context}
    return LoadedModel(model=model, tokenizer=ByteTokenizer(), source=f"tiny-{kind}", device="cpu", dtype="float32", spec=spec)


def demo_model() -> LoadedModel:
    from backend.models.load import load_model

    return load_model("demo", "cpu", "fp32")


def labels(tokenizer):
    return lambda ids: [tokenizer.decode([i]) for i in ids]


def full_attentions(loaded, ids) -> np.ndarray:
    with torch.inference_mode():
        out = loaded.model(input_ids=torch.tensor([ids]), output_attentions=True, use_cache=False)
    return np.stack([a[0].float().numpy() for a in out.attentions])  # [L, H, n, n]


def stream_all(loaded, ids, **kw):
    session = StreamSession(loaded, ids, labels(loaded.tokenizer), **kw)
    rows = []
    while (step := session.step()) is not None:
        rows.append(step["rows"])
    return session, rows


# ---- streamed rows = one full forward --------------------------------------------------------

@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_streamed_rows_equal_full_forward(kind):
    loaded = tiny(kind)
    ids = list(TEXT.encode())[:40]
    session, rows = stream_all(loaded, ids)
    full = full_attentions(loaded, ids)
    assert len(rows) == len(ids) and session.done
    for t, row in enumerate(rows):  # every layer and head at once
        np.testing.assert_allclose(row, full[:, :, t, : t + 1], atol=1e-5)
    # the stored history (single tokens: the context fits the cells; float16) is the same matrix
    for layer, head in [(0, 2), (1, None), ("all", None)]:
        v = session.view_index(layer, head)
        ref = full.mean(axis=(0, 1)) if layer == "all" else (full[layer].mean(0) if head is None else full[layer, head])
        for t, stored in enumerate(session.history(v)):
            np.testing.assert_allclose(stored, ref[t, : t + 1], atol=1e-3, rtol=2e-3)


def test_demo_model_stream_matches_full_forward_and_sinks():
    loaded = demo_model()
    from backend.attention.extract import encode

    ids = encode(loaded, TEXT * 2)[:48]
    session, rows = stream_all(loaded, ids)
    full = full_attentions(loaded, ids)
    for t, row in enumerate(rows):
        np.testing.assert_allclose(row, full[:, :, t, : t + 1], atol=1e-4)
    for layer in range(session.layers):  # the incremental sinks are the one-shot definition on the matrix
        v = session.view_index(layer, None)
        assert [s["position"] for s in session.sinks(v)] == S.sinks_in_matrix(full[layer].mean(0))
        assert session.heavy_hitters(v) == S.heavy_hitters(full[layer].mean(0).sum(axis=0))


def test_generation_greedy_and_seeded_sampling():
    loaded = tiny()
    ids = list(b"hello")
    greedy, _ = stream_all(loaded, ids, generate=6)
    with torch.inference_mode():
        expected = loaded.model.generate(torch.tensor([ids]), max_new_tokens=6, do_sample=False, pad_token_id=0,
                                         eos_token_id=None)[0].tolist()
    assert greedy.token_ids == expected and greedy.position == 11 and "Generated 6" in greedy.message
    a, _ = stream_all(loaded, ids, generate=8, temperature=1.0, seed=7)
    b, _ = stream_all(loaded, ids, generate=8, temperature=1.0, seed=7)
    assert a.token_ids == b.token_ids


def test_stops_at_context_length():
    loaded = tiny(context=16)
    session, rows = stream_all(loaded, list(b"0123456789"), generate=100)
    assert len(rows) == 16 and session.done and "context length (16 tokens)" in session.message
    assert session.step() is None


def test_state_bound():
    # stream.py's figures: SmolLM2 (30 × 9, 8,192 tokens) 135.6 MB at any position; GPT-2-small (12 × 12, 1,024) under 80 MB
    assert round(state_bound(30, 9, 8192) / 1e6, 1) == 135.6
    assert state_bound(30, 9, 8192) == 301 * (256 * 245 * 4 + 245 * 12) + (256 + 245 + 2) * 8 + 301 * 8192 * 24 + 30 * 16 * 8
    assert state_bound(12, 12, 1024) < 80e6


def pooled_by_hand(matrix, row_edges, col_edges):
    """Max and mean over each cell's entries with key ≤ query (NaN for none), by loops."""
    top = np.full((len(row_edges) - 1, len(col_edges) - 1), np.nan)
    mean = top.copy()
    for i, (a, b) in enumerate(zip(row_edges, row_edges[1:])):
        for j, (c, d) in enumerate(zip(col_edges, col_edges[1:])):
            values = [matrix[q, k] for q in range(a, b) for k in range(c, d) if k <= q]
            if values:
                top[i, j], mean[i, j] = max(values), np.mean(values)
    return top, mean


def test_pooled_history_equals_pooling_the_full_rows():
    """A context longer than the cells: the history holds max/mean cells equal to pooling every row (float16),
    its first sink_count columns single, and the step's newest row bin is the history's last row."""
    loaded = tiny("llama", context=96)
    ids = list(TEXT.encode())[:70]
    session = StreamSession(loaded, ids, labels(loaded.tokenizer), cells=16, sink_count=4)
    assert session.pooled and session.max_tokens == 96
    rows = []
    while (step := session.step()) is not None:
        rows.append(step["rows"])
        if session.position == 37:  # mid-bin: the bin being filled is in the cells too
            mid = session.history_cells(session.view_index(1, None))
    full = full_attentions(loaded, ids)
    for layer, head in [(1, None), (0, 3), ("all", None)]:
        v = session.view_index(layer, head)
        ref = full.mean(axis=(0, 1)) if layer == "all" else (full[layer].mean(0) if head is None else full[layer, head])
        cells = session.history_cells(v)
        assert cells["col_edges"][:5].tolist() == [0, 1, 2, 3, 4] and cells["row_edges"][-1] >= 70
        top, mean = pooled_by_hand(ref, np.minimum(cells["row_edges"], 70), cells["col_edges"][cells["col_edges"] <= 70])
        np.testing.assert_allclose(cells["max"][:, : top.shape[1]], top, rtol=2e-3, atol=1e-6)
        np.testing.assert_allclose(cells["mean"][:, : top.shape[1]], mean, rtol=2e-3, atol=1e-6)
        current = session.current_cells(v)
        np.testing.assert_allclose(current["max"], cells["max"][current["row"]], rtol=2e-3)
    ref = full[1].mean(0)
    top, _ = pooled_by_hand(ref, np.minimum(mid["row_edges"], 37), mid["col_edges"][mid["col_edges"] <= 37])
    np.testing.assert_allclose(mid["max"][:, : top.shape[1]], top, rtol=2e-3, atol=1e-6)


def test_state_stays_within_its_bound_to_a_long_context():
    """A Llama-shaped model with a 2,048-token context streams all of it; the arrays the session holds stay
    within state_bound at every checkpoint, where a per-head history of every row would hold 8 × n²/2 floats."""
    loaded = tiny("llama", context=2048)
    session = StreamSession(loaded, [1] * 10, labels(loaded.tokenizer), generate=2048, temperature=1.0)
    bound = session.state_bound()

    def held():
        arrays = [a for a in list(vars(session).values()) + list(vars(session._history).values()) if isinstance(a, np.ndarray)]
        return sum(a.nbytes for a in arrays)

    sizes = []
    while session.step() is not None:
        if session.position in (64, 512, 2048):
            sizes.append(held())
            assert sizes[-1] <= bound == session.state_bound()
    assert session.position == 2048 and "context length" in session.message
    assert bound < 8 * 2048 * 2049 // 2 * 1  # under a uint8 per-head history of every row, let alone floats
    assert sizes[-1] - sizes[0] <= session.n_views * 2048 * 4  # only the newest row grows with the position
    v = session.view_index(1, None)
    cells = session.history_cells(v)
    assert len(cells["row_edges"]) - 1 == len(cells["max"]) <= 256 and not np.isnan(cells["max"][-1, 0])


# ---- sinks and heavy hitters on hand-made arrays ----------------------------------------------

def causal(rows: list[list[float]]) -> np.ndarray:
    n = len(rows)
    a = np.zeros((n, n))
    for t, r in enumerate(rows):
        a[t, : len(r)] = r
    return a


def test_sink_definition_on_hand_made_matrix():
    # key 0 gets 0.5 from every later query, key 2 gets 0.3 from q=3..6 (4 queries) and keys 4.. too few queries
    n = 8
    a = np.zeros((n, n))
    for q in range(n):
        a[q, q] = 1.0
        if q >= 1:
            a[q, 0], a[q, q] = 0.5, 0.5
        if q >= 3:
            a[q, 2], a[q, q] = 0.3, 0.2
    assert S.sinks_in_matrix(a, 0.10) == [0, 2]                     # key 2: mean over q=3..7 is 0.3 ≥ 0.1
    assert S.sinks_in_matrix(a, 0.35) == [0]
    # min queries: key 5 gets everything from q=6,7 (two queries) — not a sink yet
    b = a.copy()
    b[6:, :] = 0
    b[6, 5] = b[7, 5] = 1.0
    assert 5 not in S.sinks_in_matrix(b, 0.1)
    mean = S.mean_received(S.received_after(a), n - 1)
    assert mean[0] == pytest.approx(0.5) and np.isnan(mean[n - 1])
    # ... and at least 10% of the tokens so far: in a 100-token stream, a key that the last 6 queries
    # look at hard is not a sink yet (it needs 10), one the last 10 queries look at is
    def looked_at_by_last(k):
        c = np.eye(100)
        for q in range(100 - k, 100):
            c[q, 99 - k], c[q, q] = 0.5, 0.5
        return c

    assert S.min_later_queries(100) == 10 and S.min_later_queries(20) == 4
    assert S.sinks_in_matrix(looked_at_by_last(6)) == [] and S.sinks_in_matrix(looked_at_by_last(6), min_queries=4) == [93]
    assert S.sinks_in_matrix(looked_at_by_last(10)) == [89]


def test_heavy_hitters_are_top_fraction_by_accumulated_attention():
    acc = np.array([5.0, 0.1, 3.0, 0.2, 3.0, 0.0, 0.5, 0.4, 0.3, 0.2, 0.1])  # 11 keys: ceil(10%) = 2
    assert S.heavy_hitters(acc, 0.10) == [0, 2]                  # tie 2 vs 4: the earlier key
    assert S.heavy_hitters(acc, 0.30) == [0, 2, 4, 6]
    assert S.heavy_hitters(acc, 0.0) == []


def test_recommended_sink_count():
    # the fewest leading tokens k such that token k takes < 1% (its lead share); NaN = cannot judge yet: stop
    assert S.recommended_sink_count(np.array([0.6, 0.02, 0.005, 0.3])) == 2
    assert S.recommended_sink_count(np.array([0.6, 0.009, 0.3])) == 1       # only the leading run counts
    assert S.recommended_sink_count(np.array([0.004, 0.5])) == 0            # no sink at position 0: pin nothing
    assert S.recommended_sink_count(np.array([0.5, np.nan, 0.5])) == 1
    assert S.recommended_sink_count(np.full(16, 0.5)) == 16                  # capped at the 16 positions judged
    # ... and no more than an even spread gives it: on a 40-token stream 1/(q+1) is 2–4%
    even = S.even_share(40)
    assert even[0] == pytest.approx(np.mean(1 / np.arange(17, 41))) and np.isnan(even[9])
    assert S.recommended_sink_count(np.array([0.2, 0.03, 0.02]), even) == 1
    assert S.recommended_sink_count(np.array([0.2, 0.06, 0.02]), even) == 2


def test_lead_share_counts_only_queries_16_tokens_later():
    n = 40
    a = np.zeros((n, n))
    a[np.arange(n), np.arange(n)] = 1.0
    a[1:, 0], a[np.arange(1, n), np.arange(1, n)] = 0.25, 0.75   # key 0: a quarter of every row
    a[2:18, 1] = 0.5                                             # key 1: only its 16 nearest queries look at it
    share = S.lead_share(a)
    assert share[0] == pytest.approx(0.25)             # queries 16..39
    assert share[1] == pytest.approx(0.5 * 1 / 23)     # queries 17..39: only q = 17 saw it
    assert np.isnan(share[9])                          # 40 - 25 = 15 queries < 16: not judged yet
    assert S.recommended_sink_count(share) == 2        # 0.25, then 0.0217 ≥ 1%, then key 2 gets 0


def test_stream_sinks_match_one_shot_definition_on_tiny_model():
    loaded = tiny("llama")
    ids = list(TEXT.encode())[:48]
    session, _ = stream_all(loaded, ids, sink_threshold=0.05, heavy_fraction=0.2)
    full = full_attentions(loaded, ids)
    for layer, head, ref in [(0, 1, full[0, 1]), (1, None, full[1].mean(0)), ("all", None, full.mean(axis=(0, 1)))]:
        v = session.view_index(layer, head)
        assert [s["position"] for s in session.sinks(v)] == S.sinks_in_matrix(ref, 0.05)
        assert session.heavy_hitters(v) == S.heavy_hitters(ref.sum(axis=0), 0.2)
    grid = np.array(session.sink_grid())
    np.testing.assert_allclose(grid, full[:, :, 1:, 0].mean(axis=-1), atol=1e-5)
    shares = np.stack([S.lead_share(full[l].mean(0)) for l in range(2)])
    np.testing.assert_allclose(session.lead_shares(), shares, atol=1e-6)
    per_layer = [S.recommended_sink_count(x, S.even_share(48)) for x in shares]
    assert session.recommended_sinks_by_layer() == per_layer and session.recommended_sinks() == max(per_layer)
    mass = session.sink_mass_by_layer()
    np.testing.assert_allclose(mass, full[:, :, -1, :4].sum(-1).mean(-1), atol=1e-5)


# ---- the Api ----------------------------------------------------------------------------------

@pytest.fixture
def api():
    a = Api()
    a._state.model = tiny("gpt2")
    return a


def test_api_stream_round_trip(api):
    r = api.stream_start({"prompt": "hello world, hello sinks", "view": {"layer": 0, "head": 1}})
    assert r["ok"] and r["prompt_tokens"] == 24 and r["n_layers"] == 2 and r["view"] == {"layer": 0, "head": 1}
    s = api.stream_step({"steps": 3})
    assert s["ok"] and [x["position"] for x in s["steps"]] == [0, 1, 2]
    assert [len(x["row"]) for x in s["steps"]] == [1, 2, 3]   # O(n): one row per step, never the matrix
    assert len(s["sink_mass_by_layer"]) == 2 and not s["done"]
    s = api.stream_step({"steps": 100, "view": {"layer": "all"}})
    assert s["done"] and len(s["steps"]) == 21 and "End of the prompt" in s["message"]
    assert api.stream_step()["steps"] == []
    v = api.stream_view({"layer": -1, "head": None})
    assert v["ok"] and len(v["rows"]) == 24 and v["view"] == {"layer": 1, "head": None}
    st = api.stream_state()
    assert st["active"] and len(st["sink_grid"]) == 2 and len(st["sink_grid"][0]) == 4
    assert isinstance(st["recommended_sinks"], int)
    ex = api.stream_export()
    assert ex["ok"] and len(ex["rows"]) == 24 and json.dumps(ex)
    assert api.stream_reset()["ok"] and api.stream_step()["error"]["code"] == "no_stream"


def test_api_new_prompt_and_new_model_reset(api):
    api.stream_start({"prompt": "first prompt"})
    api.stream_step({"steps": 5})
    r = api.stream_start({"prompt": "second"})
    assert r["tokens"] == list("second")
    assert api.stream_step()["steps"][0]["position"] == 0
    api._state.model = tiny("llama")            # a model load swapped the model mid-stream
    e = api.stream_step()
    assert e["error"]["code"] == "no_stream" and "model changed" in e["error"]["message"]
    assert api.stream_state()["active"] is False


def test_api_bad_input_names_the_field(api):
    assert Api().stream_start({"prompt": "x"})["error"]["code"] == "no_model"
    e = api.stream_start({"prompt": "   "})["error"]
    assert e["field"] == "prompt"
    r = api.stream_start({"prompt": "x" * 65})                   # the tiny model's context is 64: stream up to it, say so
    assert r["ok"] and r["prompt_tokens"] == 64 and r["prompt_tokens_given"] == 65
    assert "65 tokens" in r["note"] and "context is 64" in r["note"]
    assert len(api.stream_step({"steps": 100})["steps"]) == 64
    e = api.stream_start({"prompt": "ok", "view": {"layer": 2}})["error"]
    assert e["field"] == "view.layer"
    api.stream_start({"prompt": "ok"})
    assert api.stream_step({"view": {"layer": 0, "head": 4}})["error"]["field"] == "view.head"
    assert api.stream_view({"layer": -3})["error"]["field"] == "layer"
    assert api.stream_step({"steps": 0})["error"]["field"] == "steps"
    assert api.stream_start({"prompt": "ok", "sink_threshold": float("nan")})["error"]["field"] == "sink_threshold"
    assert api.stream_start("nope")["error"]["field"] == "params"
    assert api.stream_start({"prompt": "ok", "view": [0, 1]})["error"]["field"] == "view"


# ---- the CLI ----------------------------------------------------------------------------------

def test_cli_prints_json_lines(tmp_path, capsys, api):
    import argparse

    from backend.cli import stream as cli

    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    f = tmp_path / "prompt.txt"
    f.write_text("hello sinks and hitters")
    args = parser.parse_args(["--text-file", str(f), "--steps", "30", "--generate", "3", "--json"])
    api.load_model = lambda params: pytest.fail("a model is loaded; --model was not given")
    args.model = None  # use the model already loaded (the test's tiny one)
    assert cli.run(args, api) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    steps = [x for x in lines if x["type"] == "step"]  # one stream_step result each (tests/test_cli_json.py)
    assert lines[0]["type"] == "start" and len(steps) == 26
    assert steps[0]["steps"][0]["position"] == 0 and steps[-1]["steps"][0]["generated"]
    assert {"token", "row", "step_seconds"} <= set(steps[0]["steps"][0]) and {"sinks", "heavy_hitters"} <= set(steps[0])
    assert lines[-1]["type"] == "summary" and lines[-1]["done"]
