"""Cache Profile tab end to end: each placement policy on the same trace, cost over the steps, the scrubbed
step's cost, the no-GPU note, a model trace sized from its sequence, and the scenario at scale."""
import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
SHOTS = Path(os.environ.get("SINKVIS_SHOTS_DIR", "/tmp/shots/15"))
POLICIES = {"lru": "LRU offload", "topk": "top-k fetch", "heat": "Heat with hysteresis"}


def _refresh(page, policy):
    page.select_option("#tab-profile select[data-field='policy']", policy)
    page.click("#tab-profile >> text=Run profile")
    page.wait_for_function(f"() => {{ const r = window.sinkvis.profile.result(); return r && r.summary.policy === '{policy}'; }}",
                           timeout=120_000)
    return page.evaluate("() => window.sinkvis.profile.result()")


def test_each_policy_on_the_same_trace_with_cost_over_the_steps(page, served):
    api, _ = served
    page.tab("profile")
    page.fill("#tab-profile input[data-field='length']", "20000")
    gpu_note = page.locator("#tab-profile .gpu-note").inner_text()
    from backend.profile import presets

    if presets.gpu()["modelled"]:  # said on the panel, not in a tooltip
        assert "No GPU found" in gpu_note and "H100" in gpu_note
    ratio = {}
    for policy, label in POLICIES.items():
        result = _refresh(page, policy)
        s = result["summary"]
        ratio[policy] = s["read_time_ratio"]
        assert label in page.locator("#tab-profile .progress-text").inner_text()
        chart = page.evaluate("() => { const c = window.sinkvis.profile.costChart(); "
                              "return c.data.datasets.map(d => ({label: d.label, n: d.data.length, last: d.data[d.data.length - 1].y})); }")
        assert [d["n"] for d in chart] == [len(result["timeline"]["read_seconds"])] * 3
        assert chart[1]["label"] == "all in HBM"
        assert chart[0]["last"] == pytest.approx(result["timeline"]["read_seconds"][-1] * 1e3)
        headline = page.locator("#tab-profile .read-time").inner_text()
        assert "mean over all steps of the run" in headline
        # Where the "N× slower" comes from, beside it (issue 33, item 8).
        assert f"{s['read_time_ratio']:.2f}× slower" in headline
        assert "From the Constrained preset (HBM 20%" in headline and "the same for every model" in headline
        # Scrub to a middle snapshot: the cost at that step, labelled as such, from the backend's snapshot.
        page.locator("#tab-profile input[type='range']").evaluate(
            "(el) => { el.value = 20; el.dispatchEvent(new Event('input')); }")
        step = result["snapshot_steps"][20]
        page.wait_for_function(f"() => document.querySelector('#tab-profile .headline-step').textContent.includes('at step {step:,} (scrubbed)')",
                               timeout=10_000)
        snap = api.profile_snapshot({"index": 20})
        assert snap["step"] == step and snap["read_seconds"] > 0
        page.locator("#tab-profile input[type='range']").evaluate(
            "(el) => { el.value = el.max; el.dispatchEvent(new Event('input')); }")
        page.wait_for_function("() => document.querySelector('#tab-profile .scrub-label').textContent.includes('(final)')")
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"profile-{policy}.png"), full_page=True)
    assert ratio["topk"] < ratio["lru"]  # top-k reads sinks + window + k blocks, not every block where it lives
    page.shot("profile", docs=True)


def _ticks(page, chart, axis):
    return page.evaluate(f"() => window.sinkvis.profile.{chart}().scales.{axis}.ticks.map(t => t.value)")


def _round_steps(ticks):
    """Evenly spaced ticks whose step is 1, 2, 2.5 or 5 × a power of ten (what a reader expects), from 0."""
    import math

    step = ticks[1] - ticks[0]
    mantissa = step / 10 ** math.floor(math.log10(step))
    return (ticks[0] == 0 and round(mantissa, 6) in (1, 2, 2.5, 5)
            and all(b - a == pytest.approx(step) for a, b in zip(ticks, ticks[1:])))


def test_one_unit_family_and_round_ticks(page):
    """Sizes and rates in binary units everywhere on the tab (no GB beside GiB); the step axis has round
    ticks (0, 2,000, 4,000 …), not the buckets' midpoints (3418, 6738) as category labels."""
    import re

    page.tab("profile")
    page.fill("#tab-profile input[data-field='length']", "20000")
    _refresh(page, "lru")
    heads = page.locator("#tab-profile .tier-table thead").inner_text()
    assert "capacity GiB" in heads and "read GiB/s" in heads
    text = page.locator("#tab-profile").inner_text()
    assert re.search(r"\d (KiB|MiB|GiB)", text)
    decimal = re.findall(r"\d (?:kB|KB|MB|GB|TB)\b", text)  # "H100 80GB", a product's name, has no space
    assert not decimal, decimal
    titles = page.evaluate("() => { const s = window.sinkvis.profile.costChart().options.scales; return [s.y.title.text, s.y1.title.text]; }")
    assert titles == ["KV read time (ms / step)", "moved (MiB / step)"]
    x = _ticks(page, "costChart", "x")
    assert len(x) >= 3 and _round_steps(x), x
    labels = page.evaluate("() => window.sinkvis.profile.costChart().scales.x.ticks.map(t => t.label)")
    assert labels == [f"{v:,}" for v in x]  # the step itself is written, not a bucket's label
    assert _round_steps(_ticks(page, "costChart", "y1")), _ticks(page, "costChart", "y1")


def test_block_map_hover_shows_the_backend_values(page):
    page.tab("profile")
    page.fill("#tab-profile input[data-field='length']", "20000")
    result = _refresh(page, "heat")
    assert "modelled tier" in page.locator("#tab-profile .l2-note").inner_text()
    assert len(set(result["tier"])) == 4  # the heat rule uses all four tiers on Constrained
    box = page.locator("#tab-profile canvas.blockmap").bounding_box()
    page.mouse.move(box["x"] + 3, box["y"] + 3)  # block 0: holds token 0, a sink, pinned to HBM
    tip = page.locator("#tab-profile .tooltip")
    tip.wait_for(state="visible")
    text = tip.inner_text()
    b = page.evaluate("() => window.sinkvis.profile.blockmap().hovered")
    assert f"block {b}\n" in text
    assert f"accesses {result['access_count'][b]:,}" in text
    tiers = ["GPU HBM", "GPU L2 (modelled)", "System RAM", "Disk"]
    assert f"tier {tiers[result['tier'][b]]}" in text
    # A block at the map's right edge: the card flips to the pointer's left, inside the window.
    page.mouse.move(box["x"] + box["width"] - 2, box["y"] + 3)
    page.wait_for_function(f"() => window.sinkvis.profile.blockmap().hovered !== {b}")
    card = tip.bounding_box()
    assert card["x"] >= 0 and card["x"] + card["width"] <= page.viewport_size["width"]


def test_model_trace_is_sized_from_its_sequence(loaded_page):
    p = loaded_page
    p.tab("profile")
    p.select_option("#tab-profile select[data-field='trace']", "model")
    p.select_option("#tab-profile select[data-field='aggregate']", "all_layers")
    p.fill("#tab-profile textarea[data-field='text']", "The hacker read the jargon file and laughed. " * 18)  # ≈ 236 tokens, inside the demo's 256 context
    result = _refresh(p, "lru")
    s = result["summary"]
    assert s["trace"] == "model" and s["n_blocks"] == len(result["tier"]) < 100
    assert s["tiers"][0]["blocks"] < s["n_blocks"]  # not "everything in HBM": Constrained sized from this sequence
    assert s["read_time_ratio"] > 1
    p.select_option("#tab-profile select[data-field='trace']", "synthetic")


def test_scenario_at_scale(page):
    page.tab("profile")
    page.select_option("#tab-profile select[data-field='model']", "Llama-3.1-8B")
    page.fill("#tab-profile input[data-field='context']", "1000000")
    page.select_option("#tab-profile select[data-field='gpu']", "H100")
    page.click("#tab-profile >> text=Run scenario")
    page.wait_for_function("() => window.sinkvis.profile.scenario() !== null", timeout=180_000)
    out = page.locator("#tab-profile .scenario-out").inner_text()
    got = page.evaluate("() => window.sinkvis.profile.scenario()")
    sc, replay = got["scenario"], got["replay"]
    assert f"HBM runs out at\n{sc['hbm_runs_out_at_tokens']:,} tokens (this context does not fit)" in out
    assert "128.0 KiB (fp16)" in out and "does not fit" in out
    # Drawn in the charts, not only listed (issue 33, item 8): the block map holds the replay's blocks,
    # says whose they are, and no longer asks for a profile run.
    assert page.evaluate("() => window.sinkvis.profile.blockmap().n") == replay["n_blocks"] == 62_500
    assert not page.locator("#tab-profile .blockmap-viz .empty-viz").is_visible()
    source = page.locator("#tab-profile .map-source").inner_text()
    assert source.startswith("Scale scenario: Llama-3.1-8B, 1,000,000 tokens on NVIDIA H100")
    assert "Run profile" not in page.locator("#tab-profile .profile-map").inner_text()
    headline = page.locator("#tab-profile .read-time").inner_text()
    assert f"{replay['read_time_ratio']:.2f}×" in headline and "From the scale scenario: Llama-3.1-8B" in headline
    tiers = page.evaluate("() => window.sinkvis.profile.result().summary.tiers.map(t => t.blocks)")
    assert tiers == [t["blocks"] for t in replay["tiers"]] and tiers[0] < sum(tiers)  # it spills
    cost = page.evaluate("() => window.sinkvis.profile.costChart().data.datasets[0].data.length")
    assert cost == len(got["timeline"]["read_seconds"])
    # The scrubber walks the replay: the backend kept its snapshots.
    page.locator("#tab-profile input[type='range']").evaluate("(el) => { el.value = 10; el.dispatchEvent(new Event('input')); }")
    page.wait_for_function("() => document.querySelector('#tab-profile .headline-step').textContent.includes('(scrubbed)')")
    page.locator("#tab-profile .scenario").screenshot(path=str(SHOTS / "scenario.png"))
