"""Hub search: HfApi.list_models, text-generation by default, most downloaded first."""
import httpx2
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

from ..errors import UserError
from .endpoint import OFFLINE_MESSAGE, endpoint, hub_reachable

SORTS = ("downloads", "likes", "trending_score", "last_modified", "created_at")
_FIELDS = ["author", "downloads", "likes", "tags", "pipeline_tag", "gated"]  # `expand`: only what a card shows


def _card(m) -> dict:
    return {"id": m.id, "author": m.author or (m.id.split("/")[0] if "/" in m.id else None),
            "downloads": m.downloads or 0, "likes": m.likes or 0, "tags": list(m.tags or [])[:30],
            "pipeline_tag": m.pipeline_tag, "gated": bool(m.gated)}  # the Hub says False, "auto" or "manual"


def search_models(query: str, limit: int = 20, task: str | None = "text-generation", sort: str = "downloads",
                  token: str | None = None) -> dict:
    """{"models": [...]} or, with no network, {"models": [], "offline": True, "message": ...}."""
    offline = {"models": [], "offline": True, "message": OFFLINE_MESSAGE}
    if not hub_reachable():
        return offline
    api = HfApi(endpoint=endpoint(), token=token or False)  # False: do not let the client pick another token
    try:
        found = api.list_models(search=query.strip() or None, pipeline_tag=task or None, sort=sort, limit=limit,
                                expand=_FIELDS)
        return {"models": [_card(m) for m in found]}
    except (httpx2.ConnectError, httpx2.TimeoutException, OfflineModeIsEnabled):
        return offline
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        raise UserError("hub_error", f"Hub search failed (HTTP {status}); try again later.") from None
