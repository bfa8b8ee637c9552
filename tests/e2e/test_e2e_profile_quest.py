"""Cache Profile tab: top-k fetch with Quest's own page choice on the loaded model's trace."""
import pytest

pytestmark = pytest.mark.e2e


def test_topk_fetch_with_quests_page_choice(loaded_page):
    p = loaded_page
    p.tab("profile")
    p.select_option("#tab-profile select[data-field='trace']", "model")
    p.select_option("#tab-profile select[data-field='aggregate']", "all_layers")
    p.fill("#tab-profile textarea[data-field='text']", "The hacker read the jargon file and laughed. " * 18)
    p.fill("#tab-profile input[data-field='block_size']", "16")
    p.select_option("#tab-profile select[data-field='policy']", "topk")
    p.fill("#tab-profile input[data-field='window']", "2")
    p.fill("#tab-profile input[data-field='k']", "3")
    p.select_option("#tab-profile select[data-field='fetch_rule']", "quest_bound")
    assert "upper bound" in p.locator("#tab-profile .fetch-rule-hint").inner_text()
    p.click("#tab-profile >> text=Run profile")
    p.wait_for_function("() => { const r = window.sinkvis.profile.result(); "
                        "return r && r.summary.policy_settings.fetch_rule === 'quest_bound'; }", timeout=120_000)
    s = p.evaluate("() => window.sinkvis.profile.result().summary")
    assert s["trace"] == "model" and s["bytes_fetched"] > 0 and "Quest" in s["fetch_rule_is"]
    p.select_option("#tab-profile select[data-field='fetch_rule']", "attention")
    p.select_option("#tab-profile select[data-field='trace']", "synthetic")
