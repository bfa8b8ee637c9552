"""The info card of one Hub model: who, how popular, gated or not, how big, will it fit."""
import re

from huggingface_hub import HfApi, get_session, hf_hub_url
from huggingface_hub.utils import build_hf_headers, hf_raise_for_status

from ..errors import UserError
from .endpoint import OFFLINE_MESSAGE, endpoint, hub_reachable
from .errors import hub_user_error
from .files import is_weight_file, wanted_files
from .memory import estimate_memory

TIMEOUT_S = 10
CARD_CHARS = 600


def card_text(markdown: str, limit: int = CARD_CHARS) -> str:
    """A README as a short plain-text excerpt: no front matter, no markup, no HTML."""
    text = re.sub(r"\A---\n.*?\n---\n", "", markdown, flags=re.S)  # YAML metadata block
    text = re.sub(r"```.*?```", " ", text, flags=re.S)  # code blocks say little in an excerpt
    text = re.sub(r"<[^>]*>", " ", text)  # HTML tags (the UI inserts text, but keep the excerpt readable)
    text = re.sub(r"!\[[^\]]*\]\([^)]*\)", " ", text)  # images
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links → their text
    text = re.sub(r"^\s{0,3}(#{1,6}|[-*+>]|\d+\.)\s*", "", text, flags=re.M)  # headings, bullets, quotes
    text = re.sub(r"[*_`|]+", "", text)
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"


def _readme(repo_id: str, sha: str | None, token: str | None) -> str:
    """README.md fetched straight from the resolve URL, so a glance at a card does not fill the cache."""
    url = hf_hub_url(repo_id, "README.md", revision=sha, endpoint=endpoint())
    try:
        response = get_session().get(url, headers=build_hf_headers(token=token or False), timeout=TIMEOUT_S)
        hf_raise_for_status(response)
    except Exception:  # noqa: BLE001 - the card is a nicety: no README, no excerpt
        return ""
    return response.text


def _size_and_parameters(info) -> tuple[int | None, int | None, bool]:
    """(download size of the files we would fetch, parameters, whether parameters is only an estimate)."""
    sizes = {s.rfilename: s.size for s in info.siblings or []}
    chosen = wanted_files(sizes)
    size = sum(sizes[n] or 0 for n in chosen) if chosen and all(sizes[n] is not None for n in chosen) else None
    if info.safetensors is not None and info.safetensors.total:
        return size, int(info.safetensors.total), False
    weights = sum(sizes[n] or 0 for n in chosen if is_weight_file(n))
    # No parameter count from the Hub: assume 16-bit weights. For fp32 files this overestimates
    # the parameters twofold, which errs on the side of "will not fit", never of a crash.
    return size, (weights // 2 or None), bool(weights)


def model_card(repo_id: str, device: str = "auto", precision: str = "auto", token: str | None = None) -> dict:
    if not hub_reachable():
        raise UserError("offline", OFFLINE_MESSAGE, "repo_id")
    try:
        info = HfApi(endpoint=endpoint(), token=token or False).model_info(repo_id, files_metadata=True,
                                                                          timeout=TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 - mapped to a message, or re-raised as it was
        raise hub_user_error(exc, repo_id, token is not None) from None
    size, parameters, estimated = _size_and_parameters(info)
    card = card_text(_readme(repo_id, info.sha, token))
    return {"id": info.id, "author": info.author or repo_id.split("/")[0], "downloads": info.downloads or 0,
            "likes": info.likes or 0, "pipeline_tag": info.pipeline_tag, "tags": list(info.tags or [])[:40],
            "gated": bool(info.gated), "gated_mode": info.gated or None, "size_bytes": size, "parameters": parameters,
            "parameters_estimated": estimated, "memory": estimate_memory(parameters, device, precision),
            "card_excerpt": card}
