"""The real-model tier: SmolLM2-135M-Instruct (pretrained Llama, GGUF Q4_1 → fp32 on the CPU).

One load per session (the `smollm2_api` fixture, ~15–20 s), one 64-token stream and one full
forward shared by the tests here: attention rows causal and summing to 1, position 0 a sink in
the upper layers (the attention-sink phenomenon, for real), streamed rows equal to the full
forward (GQA with 3 KV heads and RoPE through the real DynamicCache), a recommended sink count
of 1–4, and the Local list finding a GGUF in an LM-Studio-style folder.
"""
import numpy as np
import pytest
import torch

from backend.attention import sinks as S
from backend.attention.extract import token_labels
from backend.attention.stream import StreamSession
from backend.models.bundled import LABEL, smollm2_path

# English prose, 64+ tokens with SmolLM2's tokenizer (no BOS: position 0 is the word "The").
TEXT = ("The old lighthouse keeper climbed the spiral stairs every evening, carrying a small lamp and a "
        "notebook in which he wrote down the ships he saw, the colour of the sky and the direction of the wind. "
        "Over forty years the notebooks filled three shelves of the little stone house at the foot of the tower, "
        "and visitors from the village came to read them on winter afternoons.")
N = 64


@pytest.fixture(scope="module")
def run(smollm2_api):
    """The stream's rows for the first N tokens, and one full forward's attentions over the same tokens."""
    loaded = smollm2_api._state.model
    ids = loaded.tokenizer(TEXT)["input_ids"][:N]
    assert len(ids) == N
    session = StreamSession(loaded, ids, lambda i: token_labels(loaded.tokenizer, i))
    rows = [session.step()["rows"] for _ in range(N)]
    with torch.inference_mode():
        out = loaded.model(input_ids=torch.tensor([ids]), output_attentions=True, use_cache=False)
    full = np.stack([a[0].float().numpy() for a in out.attentions])  # [layers, heads, N, N]
    return loaded, session, rows, full


def test_smollm2_loads_from_gguf(smollm2_api):
    info = smollm2_api.model_info()
    spec = info["spec"]
    assert info["source"] == "smollm2" and info["dtype"] == "float32"
    assert (spec["format"], spec["quantization"], spec["dequantized_to"]) == ("gguf", "Q4_1", "float32")
    assert (spec["layers"], spec["heads"], spec["kv_heads"], spec["head_dim"], spec["context_length"]) == (30, 9, 3, 64, 8192)
    assert spec["position_scheme"] == "rotary" and spec["parameters"] == 134_515_008
    assert spec["weights_bytes"] == 4 * spec["parameters"] and spec["file_bytes"] == smollm2_path().stat().st_size


def test_rows_are_causal_and_sum_to_one(run):
    _, _, _, full = run
    np.testing.assert_allclose(full.sum(-1), 1.0, atol=1e-5)
    assert np.abs(np.triu(full, 1)).max() == 0.0


def test_position_zero_is_a_sink_in_most_upper_layers(run):
    _, _, _, full = run
    received0 = full[:, :, 1:, 0].mean(axis=(1, 2))          # per layer: mean over heads and later queries
    upper = received0[15:]
    assert (upper >= S.SINK_THRESHOLD).sum() >= 12, received0.round(3)   # 12 of the 15 upper layers at least
    # ... far above what an even spread gives position 0 (mean of 1/(q+1) over q = 1..63 ≈ 0.064)
    assert np.median(upper) > 4 * np.mean(1 / np.arange(2, N + 1)), received0.round(3)


def test_streamed_rows_equal_one_full_forward(run):
    _, session, rows, full = run
    for t in (0, 1, 7, 31, N - 1):
        np.testing.assert_allclose(rows[t], full[:, :, t, : t + 1], atol=2e-5, rtol=1e-4)
    worst = max(np.abs(rows[t] - full[:, :, t, : t + 1]).max() for t in range(N))
    assert worst < 2e-5, worst


def test_recommended_sink_count_is_one_to_four(run):
    _, session, _, full = run
    per_layer = session.recommended_sinks_by_layer()
    assert len(per_layer) == 30 and 1 <= session.recommended_sinks() <= 4, per_layer
    # the live sums agree with the one-shot rule on the full matrices
    shares = np.stack([S.lead_share(full[layer].mean(0)) for layer in range(30)])
    np.testing.assert_allclose(session.lead_shares(), shares, atol=1e-5)   # float32 rows summed step by step
    assert per_layer == [S.recommended_sink_count(x, S.even_share(N)) for x in shares]
    # the sink table of the all-layer view: position 0, and no token from the stream's last 10%
    sinks = [s["position"] for s in session.sinks(session.view_index("all", None))]
    assert sinks[:1] == [0] and all(p < N - S.min_later_queries(N) for p in sinks)


def test_local_list_finds_a_gguf_in_an_lm_studio_folder(smollm2_api, tmp_path, monkeypatch):
    models = tmp_path / "lmstudio" / "models" / "HuggingFaceTB" / "SmolLM2-135M-Instruct-GGUF"
    models.mkdir(parents=True)
    (models / "smollm2-135m-instruct-q4_1.gguf").symlink_to(smollm2_path())
    (models / "notes.txt").write_text("not a model")
    monkeypatch.setenv("SINKVIS_GGUF_DIRS", str(tmp_path / "lmstudio" / "models"))
    listed = smollm2_api.local_models()["models"]
    found = [m for m in listed if m["source"] == "lmstudio"]
    assert [m["id"] for m in found] == ["HuggingFaceTB/SmolLM2-135M-Instruct-GGUF/smollm2-135m-instruct-q4_1.gguf"]
    m = found[0]
    assert (m["architecture"], m["quantization"], m["parameters"], m["layers"], m["kv_heads"]) == ("llama", "Q4_1", 134_515_008, 30, 3)
    assert m["size_bytes"] == smollm2_path().stat().st_size and m["load"].endswith("q4_1.gguf")
    bundled = [x for x in listed if x["source"] == "smollm2"]
    assert [x["id"] for x in bundled] == [LABEL] and bundled[0]["load"] == "smollm2" and "error" not in bundled[0]
    assert listed[0]["source"] == "demo"
