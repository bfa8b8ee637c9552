"""Your policies (issue #17) end to end: the policies folder loads at start, errors name file and
line, a rule runs beside the built-ins, a file elsewhere asks before its code runs, Reload."""
import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "policies"


@pytest.fixture
def policy_dir(tmp_path, monkeypatch):
    folder = tmp_path / "policies"
    folder.mkdir()
    shutil.copy(EXAMPLES / "h2o_decay.py", folder)
    (folder / "broken.py").write_text("NAME = 'broken'\ndef on_enter(t, run)\n    return 0.0\n")
    monkeypatch.setenv("SINKVIS_POLICY_DIR", str(folder))  # read when the page first lists the policies
    yield folder
    from backend.evaluate.deciders import unregister_policy

    for name in ("h2o_decay", "tova_rule", "fixed"):  # this page's Api offered them to Evaluate (process-wide)
        unregister_policy(name)


def test_user_policies_in_the_eviction_tab(policy_dir, fresh_page, tmp_path):
    p = fresh_page
    p.tab("eviction")
    p.click("#tab-eviction .user-policies summary")
    box = p.locator("#tab-eviction .user-policies")
    p.wait_for_function("() => document.querySelector('#tab-eviction .user-policy-list').textContent.includes('decay')")
    assert "H2O, decay 0.99 (h2o_decay)" in box.locator(".user-policy-list").inner_text()
    error = box.locator(".user-policy-errors li").inner_text()
    assert f"{policy_dir / 'broken.py'}:2 syntax_error" in error
    assert "runs its code" in box.inner_text()
    # Evaluate and the Sweep section offer it too.
    assert p.locator("#tab-sweep .sweep-policies input[value='h2o_decay']").is_checked()
    p.wait_for_function("() => [...document.querySelectorAll('#tab-eviction option')].some(o => o.value === 'h2o_decay' "
                        "&& o.textContent.includes('Full Cache'))")  # Evaluate's policy list
    retrieval = p.locator("#tab-retrieval .retrieval-policies label:has(input[value='h2o_decay'])")  # and Retrieval
    retrieval.wait_for(state="attached")
    assert retrieval.inner_text() == "H2O, decay 0.99" and retrieval.locator("input").is_checked()

    # The rule runs beside the built-ins.
    p.fill("#tab-eviction input[data-field='length']", "20000")
    p.select_option("#tab-eviction select[data-field='policy']", "h2o_decay")
    p.click("#tab-eviction >> text=Run Simulation")
    p.wait_for_function("() => window.sinkvis.eviction.result() !== null", timeout=120_000)
    row = p.locator("#tab-eviction .results-table tbody tr[data-policy='h2o_decay']")
    assert row.locator("td").first.inner_text() == "H2O, decay 0.99"

    # A file elsewhere: nothing runs until the user says they trust it.
    outside = tmp_path / "elsewhere" / "tova.py"
    outside.parent.mkdir()
    shutil.copy(EXAMPLES / "tova.py", outside)
    box.locator("input[data-field='policy_file']").fill(str(outside))
    box.locator("text=Load file…").click()
    trust = box.locator(".user-policy-trust")
    trust.wait_for(state="visible")
    assert "runs its Python code" in trust.inner_text()
    # A question, not an error: the status bar says so in its note, not in red (issue 33, item 9).
    assert p.locator("#st-error").inner_text() == ""
    assert "question" in p.locator("#st-note").get_attribute("class")
    assert p.locator("#tab-eviction select[data-field='policy'] option[value='tova_rule']").count() == 0
    p.shot("custom-policies-trust")
    trust.locator("text=I trust it: load").click()
    p.wait_for_selector("#tab-eviction select[data-field='policy'] option[value='tova_rule']", state="attached")
    assert "Loaded TOVA (rule file)" in box.inner_text()

    # Fix the broken file, press Reload: it loads, and the error is gone.
    (policy_dir / "broken.py").write_text("NAME = 'fixed'\ndef on_enter(t, run):\n    return 0.0\n")
    box.locator("text=Reload").click()
    p.wait_for_selector("#tab-eviction select[data-field='policy'] option[value='fixed']", state="attached")
    assert box.locator(".user-policy-errors li").count() == 0
    assert p.locator("#tab-eviction select[data-field='policy']").input_value() == "h2o_decay"  # choice kept
    p.shot("custom-policies")

    # Compare All: the three rule files beside the built-ins in one table.
    p.evaluate("() => window.scrollTo(0, 0)")
    p.click("#tab-eviction >> text=Compare All Policies")
    p.wait_for_function("() => window.sinkvis.eviction.result().results.length === 9", timeout=120_000)
    for name in ("h2o_decay", "tova_rule", "fixed"):
        assert p.locator(f"#tab-eviction .results-table tbody tr[data-policy='{name}']").count() == 1
    p.shot("custom-policies-compare")
