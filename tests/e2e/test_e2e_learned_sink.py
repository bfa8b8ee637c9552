"""gpt-oss's learned sinks in the real page: the Quick Attention heatmap draws each row's share on the
model's sink logit as a column right of the keys, and says how much it takes (a tiny gpt-oss built from
its transformers config, loaded from a folder by clicking, as a user would)."""
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from e2e_helpers import load_model_by_clicking

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import architectures  # noqa: E402

pytestmark = pytest.mark.e2e


@pytest.fixture()
def gpt_oss_page(browser, tmp_path):
    from backend.api import Api
    from backend.serve import make_server
    from conftest import VIEWPORT, Page

    api = Api()
    server, url = make_server(api, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
    p = Page(context.new_page())
    p.goto(url)
    p.wait_for_selector("body[data-ready='1']", timeout=60_000)
    load_model_by_clicking(p, architectures.save("gpt_oss", tmp_path), api)
    yield p, api
    context.close()
    server.shutdown()
    server.server_close()
    api._state.jobs.cancel_all(wait=5.0)
    assert not p.errors, f"JavaScript errors: {p.errors}"


def test_the_heatmap_shows_the_learned_sinks_share_of_every_row(gpt_oss_page):
    p, api = gpt_oss_page
    text = architectures.TEXT[:120]
    p.fill(".hub-attention textarea", text)
    p.click("text=Get Attention")
    p.wait_for_function("() => window.sinkvis.hub.heatmap().n > 0", timeout=60_000)
    expected = api.attention({"text": text})
    shown = p.evaluate("() => Array.from(window.sinkvis.hub.heatmap().learnedSink)")
    np.testing.assert_allclose(shown, expected["learned_sink"], atol=1e-6)
    rows = np.asarray(expected["matrix"]).sum(axis=1)
    np.testing.assert_allclose(rows + np.asarray(shown), 1.0, atol=1e-4)  # keys + learned sink = the whole row
    assert max(shown) > 0.3  # the sink takes a visible share (random weights: 0.001–0.6 per row)
    assert "learned sink" in p.locator(".hub-attention").inner_text()
    box = p.locator(".hub-attention canvas").bounding_box()
    geometry = p.evaluate("() => window.sinkvis.hub.heatmap().geometry()")
    x = 78 + geometry["size"] + 8  # MARGIN.left + the plot + inside the learned-sink column
    p.mouse.move(box["x"] + x, box["y"] + 12 + geometry["cell"] * 2.5)
    tip = p.locator(".hub-attention .tooltip")
    assert tip.is_visible() and "learned sink" in tip.inner_text()
    p.shot("hub-learned-sink")
