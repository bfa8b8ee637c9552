"""Quick Attention at any length (issue 32): rows computed block by block equal the dense matrix, the overview's
max and mean cells equal a plain pooling of it, sink columns keep a cell of their own, a zoom equals the dense
rows. The demo model; WHOLE and BLOCK_BYTES are lowered so that a 100-token text takes the long-text path."""
import numpy as np
import pytest

import backend.attention.view_rows as view_rows_module
from backend.attention.extract import attention_view, view_rows
from backend.attention.overview import overview, zoom
from backend.attention.pooling import edges

TEXT = "The Jargon File is a glossary of hacker slang, and its entries are short. " * 6


def pooled_reference(matrix, row_edges, col_edges):
    """Max and mean over each cell's causal entries (key ≤ query), NaN for a cell with none: loops, no tricks."""
    out = {"max": np.full((len(row_edges) - 1, len(col_edges) - 1), np.nan), "mean": None}
    out["mean"] = out["max"].copy()
    for i, (a, b) in enumerate(zip(row_edges, row_edges[1:])):
        for j, (c, d) in enumerate(zip(col_edges, col_edges[1:])):
            values = [matrix[q, k] for q in range(a, b) for k in range(c, d) if k <= q]
            if values:
                out["max"][i, j], out["mean"][i, j] = max(values), np.mean(values)
    return out


@pytest.fixture
def long_path(monkeypatch):
    """The path a text past WHOLE tokens takes (sdpa forward, rows in blocks of a few), at the demo's lengths."""
    monkeypatch.setattr(view_rows_module, "WHOLE", 16)
    monkeypatch.setattr(view_rows_module, "BLOCK_BYTES", 4 * 6 * 7 * 100)  # heads × 7 rows × 100 keys of float32: ~5 rows at ~130 keys


def test_edges_keep_asked_positions_single():
    e = edges(0, 1000, 16, keep=[0, 1, 2, 3, 517])
    assert e[0] == 0 and e[-1] == 1000 and np.all(np.diff(e) > 0)
    for k in (0, 1, 2, 3, 517):
        i = int(np.searchsorted(e, k, side="right")) - 1
        assert e[i] == k and e[i + 1] == k + 1
    assert len(e) - 1 <= 16 + 2 * 5
    assert edges(10, 30, 32).tolist() == list(range(10, 31))  # a range that fits: single tokens


@pytest.mark.parametrize("aggregate,head", [("layer", None), ("layer", 2), ("all_layers", None)])
def test_rows_in_blocks_equal_the_dense_matrix(demo_api, long_path, aggregate, head):
    loaded = demo_api._state.model
    view_rows_module.WHOLE = 10_000  # the dense reference: one block, the model's own eager forward
    dense = attention_view(loaded, TEXT, 4, head, aggregate)["matrix"]
    view_rows_module.WHOLE = 16
    ids, rows = view_rows(loaded, TEXT, 4, head, aggregate)
    assert 1 < rows.block < 16 and rows.n == len(dense) > 100
    blocks = list(rows.blocks())
    assert len(blocks) == -(-rows.n // rows.block)
    np.testing.assert_allclose(np.concatenate([b for _, b in blocks]), dense, atol=2e-6)


def test_overview_cells_equal_pooling_the_dense_matrix(demo_api, long_path):
    loaded = demo_api._state.model
    dense = attention_view(loaded, TEXT, 4)["matrix"]
    _, rows = view_rows(loaded, TEXT, 4)
    view = overview(rows, cells=16, sink_columns=4, threshold=0.10)
    assert view["matrix"] is None and len(view["row_edges"]) - 1 == 16
    ref = pooled_reference(dense, view["row_edges"], view["col_edges"])
    np.testing.assert_allclose(view["max"], ref["max"], atol=2e-6)
    np.testing.assert_allclose(view["mean"], ref["mean"], atol=2e-6)
    assert np.isnan(view["max"]).sum() > 0 and np.array_equal(np.isnan(view["max"]), np.isnan(ref["max"]))
    # Sinks as the one-shot definition finds them in the dense matrix, each with a column of its own, and
    # the first 4 keys too: at 16 cells a 100-token text puts ~7 keys in a cell, a sink gets one alone.
    from backend.attention.sinks import sinks_in_matrix

    assert view["sinks"] == sinks_in_matrix(dense, 0.10) and 0 in view["sinks"]
    for k in sorted(set(view["sinks"]) | {0, 1, 2, 3}):
        j = int(np.searchsorted(view["col_edges"], k, side="right")) - 1
        assert view["col_edges"][j] == k and view["col_edges"][j + 1] == k + 1
        np.testing.assert_allclose(view["max"][-1, j], dense[view["row_edges"][-2]:, k].max(), atol=2e-6)
    # Mean pooling of a sink's own column is its mean received attention over the row bin (no dilution).
    last = slice(view["row_edges"][-2], rows.n)
    np.testing.assert_allclose(view["mean"][-1, 0], dense[last, 0].mean(), atol=2e-6)


def test_zoom_equals_the_dense_rows(demo_api, long_path):
    loaded = demo_api._state.model
    dense = attention_view(loaded, TEXT, 4)["matrix"]
    _, rows = view_rows(loaded, TEXT, 4)
    z = zoom(rows, 40, 75, 0, 30, cells=64)
    assert z["row_edges"].tolist() == list(range(40, 76)) and z["col_edges"].tolist() == list(range(0, 31))
    np.testing.assert_allclose(z["max"], dense[40:75, 0:30], atol=2e-6)
    np.testing.assert_allclose(z["mean"], dense[40:75, 0:30], atol=2e-6)
    # A region wider than the cells is pooled like the overview, its sink column single.
    z = zoom(rows, 20, rows.n, 0, rows.n, cells=8, keep=[0])
    ref = pooled_reference(dense, z["row_edges"], z["col_edges"])
    np.testing.assert_allclose(z["max"], ref["max"], atol=2e-6)
    np.testing.assert_allclose(z["mean"], ref["mean"], atol=2e-6)
    assert z["col_edges"][:2].tolist() == [0, 1]


def test_api_overview_and_zoom(demo_api):
    short = demo_api.attention({"text": "one two three four five six"})
    o = short["overview"]
    assert o["row_edges"] == list(range(short["n"] + 1))  # fits: single tokens, the matrix itself
    np.testing.assert_allclose(o["max"][-1], short["matrix"][-1], atol=1e-6)
    res = demo_api.attention({"text": TEXT, "layer": 4, "cells": 16})
    assert res["ok"] and len(res["overview"]["row_edges"]) == 17 and res["matrix"] is not None
    z = demo_api.attention_zoom({"q0": 50, "q1": 60, "k0": 0, "k1": 10})
    assert z["ok"] and z["row_edges"] == list(range(50, 61))
    np.testing.assert_allclose(z["max"], np.array(res["matrix"])[50:60, 0:10], atol=2e-6)
    bad = demo_api.attention_zoom({"q0": 10, "q1": 20, "k0": 30, "k1": 40})  # keys right of every query
    assert not bad["ok"] and bad["error"]["field"] == "k0"
    bad = demo_api.attention_zoom({"q0": 0, "q1": 10_000})
    assert not bad["ok"] and bad["error"]["field"] == "q1"


def test_zoom_before_any_attention_is_a_clear_error(api):
    res = api.attention_zoom({"q0": 0, "q1": 4})
    assert not res["ok"] and res["error"]["code"] == "no_attention" and "Get Attention" in res["error"]["message"]


@pytest.mark.parametrize("arch", ["mistral", "gemma2", "gemma3_text", "gpt_oss"])
def test_the_long_path_takes_sdpa_masks_and_keeps_the_rows(arch, tmp_path, long_path):
    """Past WHOLE the view's forward asks for sdpa's masks (None or boolean, never n × n floats): on models with
    sliding windows (a boolean mask), a soft-cap and learned sinks (their layers answer by eager blocks), every
    layer's rows equal the whole eager forward's."""
    import architectures

    from backend.models.load import load_model

    loaded = load_model(str(architectures.save(arch, tmp_path / arch)), device="cpu", precision="fp32")
    for layer in range(loaded.spec["layers"]):
        view_rows_module.WHOLE = 10_000
        dense = attention_view(loaded, architectures.TEXT, layer)["matrix"]
        view_rows_module.WHOLE = 16
        _, rows = view_rows(loaded, architectures.TEXT, layer)
        assert rows.n == len(dense) > 16
        np.testing.assert_allclose(np.concatenate([b for _, b in rows.blocks()]), dense, atol=2e-6)
