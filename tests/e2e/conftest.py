"""End-to-end fixtures: the real Api behind `--serve`, driven in Debian's Chromium by Playwright.

No `playwright install`: the browser is the system one (apt package `chromium`).
Both are installed by the project (.ci/run and requirements-dev.txt); without them the e2e tests fail, saying what to install.
"""
import os
import shutil
import threading
from pathlib import Path

import pytest
from e2e_helpers import load_model_by_clicking

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
# The README's screenshots are refreshed only by `make screenshots` (SINKVIS_SCREENSHOTS=1):
# `make test` writes under test-artifacts/ (ignored) and leaves the work tree clean.
SCREENSHOTS = ROOT / "docs" / "screenshots"
REFRESH_DOCS = os.environ.get("SINKVIS_SCREENSHOTS") == "1"
CHROMIUM = os.environ.get("SINKVIS_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
VIEWPORT = {"width": 1500, "height": 920}


def pytest_configure(config):
    config.addinivalue_line("markers", "e2e: end-to-end test in a real web engine (headless Chromium)")


@pytest.fixture(scope="session")
def model_dir():
    """The bundled demo model (committed in assets/demo-model)."""
    from backend.models.load import DEMO_MODEL_DIR

    return DEMO_MODEL_DIR


@pytest.fixture(scope="session")
def served():
    """(api, url): one Api behind the browser-mode server for the whole session."""
    from backend.api import Api
    from backend.serve import make_server

    api = Api()
    server, url = make_server(api, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield api, url
    server.shutdown()
    server.server_close()
    api._state.jobs.cancel_all(wait=5.0)


@pytest.fixture(scope="session")
def browser():
    from playwright import sync_api

    if not Path(CHROMIUM).is_file():
        pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install chromium (.ci/run does)")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Page:
    """A Playwright page plus what it saw: JS errors and dialogs (an alert means injected script ran)."""

    def __init__(self, page):
        self.page = page
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.on("dialog", self._dialog)

    def _dialog(self, dialog):
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def __getattr__(self, name):
        return getattr(self.page, name)

    def tab(self, name: str):
        self.page.click(f".tabbar button[data-tab='{name}']")
        self.page.wait_for_selector(f"#tab-{name}.active")

    def shot(self, name: str, docs: bool = False):
        """Save a screenshot as a test artifact; with `make screenshots`, also as docs/screenshots/<name>.png."""
        ARTIFACTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"))
        if docs and REFRESH_DOCS:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


@pytest.fixture()
def page(browser, served):
    _, url = served
    context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1, accept_downloads=True)
    p = Page(context.new_page())
    p.goto(url)
    p.wait_for_selector("body[data-ready='1']", timeout=60_000)
    yield p
    context.close()
    # A test that left a long job running (an Evaluate, a sweep) must not hold the session Api's
    # heavy-job slots, where the next test's work would wait in line behind it.
    served[0]._state.jobs.cancel_all(wait=10.0)
    assert not p.errors, f"JavaScript errors: {p.errors}"
    assert not p.dialogs, f"a dialog opened (injected script ran?): {p.dialogs}"


@pytest.fixture()
def loaded_page(page, served, model_dir):
    """A page with a model loaded (through the UI the first time; later pages find it loaded)."""
    api, _ = served
    if not api.model_info().get("loaded"):
        load_model_by_clicking(page, model_dir, api)
    page.wait_for_selector("#model-badge.loaded", timeout=30_000)
    return page


@pytest.fixture()
def open_page(browser):
    """open_page(api) → a Page on `api` behind its own browser-mode server (for tests that need an Api of their
    own); every page opened is closed after the test, and a JavaScript error on any of them fails it."""
    from backend.serve import make_server

    opened = []

    def open_(api) -> Page:
        server, url = make_server(api, "127.0.0.1", 0)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
        p = Page(context.new_page())
        opened.append((server, context, p))
        p.goto(url)
        p.wait_for_selector("body[data-ready='1']", timeout=60_000)
        return p

    yield open_
    for server, context, _ in opened:
        context.close()
        server.shutdown()
        server.server_close()
    for *_, p in opened:
        assert not p.errors, f"JavaScript errors: {p.errors}"


@pytest.fixture()
def fresh_page(open_page):
    """A page on its own new Api (no model loaded), whatever the session's Api holds."""
    from backend.api import Api

    return open_page(Api())
