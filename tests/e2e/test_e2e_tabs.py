"""The tab structure (issue 33, item 7): Sweeps have their own tab, Eviction Sim names its two
sections and jumps to Evaluate, and the Model Hub's quick actions reach every analysis tab."""
import pytest

pytestmark = pytest.mark.e2e


def test_sweeps_have_their_own_tab(page):
    p = page
    assert p.locator("#tab-sweep .sweep-section").count() == 1
    assert p.locator("#tab-eviction .sweep-section").count() == 0  # moved, not copied
    p.tab("sweep")
    assert p.locator("#tab-sweep [data-field='sweep.kind']").is_visible()
    chart = p.locator("#tab-sweep .sweep-chart canvas").bounding_box()
    assert chart["width"] > 300 and chart["height"] > 100  # resized when the tab is shown, not 0 × 0


def test_eviction_names_its_sections_and_jumps_to_evaluate(page):
    p = page
    p.tab("eviction")
    nav = p.locator("#tab-eviction .section-nav")
    assert nav.is_visible()
    assert p.evaluate("() => document.querySelector('#tab-eviction').scrollTop") == 0
    nav.locator("text=Evaluate ↓").click()
    # Scrolled down until Evaluate's heading is at the top, or as far as the tab scrolls.
    p.wait_for_function("""() => { const panel = document.querySelector('#tab-eviction');
        const gap = document.querySelector('#tab-eviction .eval-section').getBoundingClientRect().top - panel.getBoundingClientRect().top;
        return panel.scrollTop > 0 && (Math.abs(gap) < 40 || panel.scrollTop >= panel.scrollHeight - panel.clientHeight - 1); }""")
    nav.locator("text=Sweeps →").click()
    p.wait_for_selector("#tab-sweep.active")


@pytest.mark.parametrize("label, tab", [("Live Stream →", "stream"), ("Eviction Sim →", "eviction"),
                                        ("Retrieval →", "retrieval"), ("Sweeps →", "sweep"), ("Cache Profile →", "profile")])
def test_hub_quick_actions_reach_every_analysis_tab(page, label, tab):
    page.tab("hub")
    page.click(f"#tab-hub .quick-actions >> text={label}")
    page.wait_for_selector(f"#tab-{tab}.active")
