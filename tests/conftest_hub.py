"""Fixtures that point the real huggingface_hub client at tests/hub_server.py.

Use: in tests/conftest.py, `from conftest_hub import hub_server, hub_env, offline_hub  # noqa: F401`,
then ask for `hub_env` in a test: it yields the running HubServer (its `.url`, `.token` for the
gated repo, `.requests` log, `.throttle_s` / `.drop_after` knobs) with HF_ENDPOINT, HF_HOME and the
token file all pointing at this test's own places.

Why constants are patched, not only the environment: huggingface_hub reads HF_ENDPOINT,
HF_HOME, the cache and token paths once, at import, into `huggingface_hub.constants`, and
the test process imported it long before this fixture runs. Its code reads those
*attributes* at call time (constants.ENDPOINT, constants.HUGGINGFACE_CO_URL_TEMPLATE,
constants.HF_HUB_CACHE, constants.HF_TOKEN_PATH), so setting them (plus the environment,
for any subprocess a test starts) is what really redirects it. A few functions bound a
default at import (scan_cache_dir's cache dir): the backend passes those explicitly.
"""
import socket
from pathlib import Path

import pytest
from huggingface_hub import constants

from hub_server import HubServer, default_repos

__all__ = ["hub_server", "hub_env", "offline_hub", "point_hub_at", "GATED_TOKEN"]  # what conftest.py star-imports

DEMO_MODEL_DIR = Path(__file__).resolve().parents[1] / "assets" / "demo-model"
GATED_TOKEN = "hf_TestGatedToken0123456789abcdefXYZ"  # fake: only the local server knows it


def point_hub_at(monkeypatch, url: str, home: Path) -> None:
    """Redirect huggingface_hub (this process and child processes) to `url`, with HF_HOME = `home`."""
    home.mkdir(parents=True, exist_ok=True)
    env = {"HF_ENDPOINT": url, "HF_HOME": str(home), "HF_HUB_CACHE": str(home / "hub"),
           "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_XET": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    proxies = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")  # 127.0.0.1 is direct
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_OIDC_RESOURCE",
                 *proxies):
        monkeypatch.delenv(name, raising=False)
    values = {"ENDPOINT": url, "HUGGINGFACE_CO_URL_TEMPLATE": url + "/{repo_id}/resolve/{revision}/{filename}",
              "HF_HOME": str(home), "HF_HUB_CACHE": str(home / "hub"), "HF_TOKEN_PATH": str(home / "token"),
              "HF_STORED_TOKENS_PATH": str(home / "stored_tokens"), "HF_HUB_OFFLINE": False,
              "HF_HUB_DISABLE_TELEMETRY": True, "HF_HUB_DISABLE_XET": True}
    for name, value in values.items():
        monkeypatch.setattr(constants, name, value)


@pytest.fixture(scope="session")
def hub_server(tmp_path_factory):
    """The local Hub, started once per test session (building its tiny models takes ~1 s)."""
    repos = default_repos(tmp_path_factory.mktemp("hub-repos"), demo_folder=DEMO_MODEL_DIR)
    server = HubServer(repos, token=GATED_TOKEN).start()
    yield server
    server.stop()


@pytest.fixture
def hub_env(hub_server, monkeypatch, tmp_path):
    """huggingface_hub pointed at the local Hub, with an empty HF_HOME for this test."""
    hub_server.throttle_s, hub_server.drop_after = 0.0, {}
    hub_server.requests.clear()
    point_hub_at(monkeypatch, hub_server.url, tmp_path / "hf-home")
    yield hub_server


@pytest.fixture
def offline_hub(monkeypatch, tmp_path):
    """huggingface_hub pointed at a closed port on 127.0.0.1: the state of a laptop on a plane."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # free now, and nothing listens on it once closed
    point_hub_at(monkeypatch, f"http://127.0.0.1:{port}", tmp_path / "hf-home")
    yield f"http://127.0.0.1:{port}"
