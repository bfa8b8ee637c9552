"""Eviction Sim heatmap, prefill compression: picking a method dims the keys it does not keep (prefill_kept)."""
import pytest

pytestmark = pytest.mark.e2e

# Per key of the last query row in the heatmap's one-pixel-per-cell image: is it dimmed? Viridis never goes
# below 84 in its brightest channel; a dimmed cell (× 0.22) never above 57.
DIMMED_IN_LAST_ROW = """() => { const hm = window.sinkvis.eviction.heatmap(); const t = hm.n - 1;
  const px = hm.ictx.getImageData(0, t, t + 1, 1).data; const out = [];
  for (let k = 0; k <= t; k++) out.push(Math.max(px[4 * k], px[4 * k + 1], px[4 * k + 2]) < 70);
  return out; }"""


def _kept(p, method):
    result = p.evaluate("() => window.sinkvis.eviction.keptResult()")
    return result, set(next(r for r in result["methods"] if r["method"] == method)["kept"])


def test_picking_a_prefill_method_dims_the_keys_it_does_not_keep(loaded_page):
    p = loaded_page
    p.tab("eviction")
    p.select_option("#tab-eviction select[data-field='trace']", "model")
    p.fill("#tab-eviction input[data-field='cache_size']", "16")
    p.fill("#tab-eviction input[data-field='window']", "8")
    p.click("#tab-eviction >> text=Run Simulation")
    p.wait_for_function("() => window.sinkvis.eviction.result() && window.sinkvis.eviction.result().params.trace === 'model'",
                        timeout=120_000)
    p.wait_for_function("() => window.sinkvis.eviction.heatmap().n > 0", timeout=60_000)
    box = "#tab-eviction .kept-controls"
    p.fill(f"{box} input[data-field='ratio']", "0.75")
    p.fill(f"{box} input[data-field='layer']", "2")
    p.fill(f"{box} input[data-field='head']", "4")
    p.select_option(f"{box} select[data-field='methods']", "snapkv")
    p.select_option(f"{box} select[data-field='methods']", "knorm")  # at once: waits for the same job, draws knorm
    p.wait_for_function("() => document.querySelector('#tab-eviction .heat-policy').textContent.startsWith('Knorm:')",  # its label
                        timeout=120_000)
    result, keep = _kept(p, "knorm")
    n = result["n"]
    assert result["settings"] == {**result["settings"], "layer": 2, "head": 4, "kv_head": 1, "ratio": 0.75}
    assert len(keep) == int(n * 0.25) and p.evaluate("() => window.sinkvis.eviction.heatmap().n") == n
    assert p.evaluate(DIMMED_IN_LAST_ROW) == [k not in keep for k in range(n)]  # drawn from the result
    hint = p.locator(f"{box} .kept-hint")
    assert "every query" in hint.text_content() and "err" not in hint.get_attribute("class")

    p.select_option(f"{box} select[data-field='methods']", "streaming_llm")  # the same job's answer: no new prefill
    p.wait_for_function("() => document.querySelector('#tab-eviction .heat-policy').textContent.startsWith('StreamingLLM:')")
    same, keep2 = _kept(p, "streaming_llm")
    assert same == result and keep2 != keep
    assert p.evaluate(DIMMED_IN_LAST_ROW) == [k not in keep2 for k in range(n)]
    p.shot("eviction-prefill-kept")

    p.select_option(f"{box} select[data-field='methods']", "")  # back to the simulated policy's own mask
    p.wait_for_function("() => document.querySelector('#tab-eviction .kept-hint').textContent === ''")
    evicted = p.evaluate("() => window.sinkvis.eviction.heatmap().evictedAt")
    assert evicted == p.evaluate("() => window.sinkvis.eviction.result().results[0].evicted_at")
