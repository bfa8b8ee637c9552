"""Where the Hub is and whether it answers right now.

huggingface_hub reads HF_ENDPOINT / HF_HOME once at import into `constants`; we read
those attributes at call time (never copy them into our own globals) so a test, or a
user who sets HF_ENDPOINT to a mirror, gets the endpoint actually in force.
"""
import os
import socket
from urllib.parse import urlsplit

from huggingface_hub import constants

OFFLINE_MESSAGE = ("Hub unreachable — you can still load the demo model, models in your Hugging Face cache, "
                   "or a local folder.")
PROBE_TIMEOUT_S = 3.0  # a laptop on a plane should hear "offline" at once, not after the client's retries


def endpoint() -> str:
    return constants.ENDPOINT


def cache_dir() -> str:
    return constants.HF_HUB_CACHE


def hub_reachable(timeout: float = PROBE_TIMEOUT_S) -> bool:
    """A TCP connect to the endpoint's host. huggingface_hub itself retries a dead host for
    ~25 s (and waits forever on a silent one), so we ask this cheap question first."""
    if constants.is_offline_mode() or os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE"):
        return False  # the variable too: huggingface_hub only read it at import
    if any(os.environ.get(n) for n in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")):
        return True  # behind a proxy a direct connect proves nothing: let the client (which uses it) try
    parts = urlsplit(endpoint())
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False
