"""huggingface_hub exceptions → UserError with a message that says what to do.

Messages are written here from the repo id alone: the client's own messages carry
URLs and request ids, and we never want a token (or anything near one) to reach the UI.
"""
import httpx2
from huggingface_hub.errors import (
    DisabledRepoError,
    GatedRepoError,
    HfHubHTTPError,
    HFValidationError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from ..errors import UserError
from .endpoint import OFFLINE_MESSAGE


def offline_error(repo_id: str) -> UserError:
    return UserError("offline", f"{OFFLINE_MESSAGE} ({repo_id} is not complete in your Hugging Face cache.)", "source")


def hub_user_error(exc: BaseException, repo_id: str, token_present: bool) -> BaseException:
    """The UserError to raise instead of `exc`; `exc` itself when it is not a Hub failure."""
    if isinstance(exc, UserError):
        return exc
    if isinstance(exc, HFValidationError):
        return UserError("bad_input", f"{repo_id!r} is not a valid model id; use the form owner/name.", "source")
    if isinstance(exc, GatedRepoError):  # before RepositoryNotFoundError: it is a subclass
        if token_present:
            return UserError("gated", f"{repo_id} is gated and your token has no access to it: accept its licence "
                             "on the Hub with the account that owns the token.", "source")
        return UserError("gated", f"{repo_id} is gated: accept its licence on the Hub and paste a token.", "source")
    if isinstance(exc, RepositoryNotFoundError):
        hint = " (or it is private and your token cannot see it)" if token_present else ""
        return UserError("not_found", f"No model named {repo_id} on the Hub{hint} — check the spelling.", "source")
    if isinstance(exc, RevisionNotFoundError):
        return UserError("not_found", f"{repo_id} has no such revision on the Hub.", "source")
    if isinstance(exc, DisabledRepoError):
        return UserError("not_found", f"{repo_id} has been disabled on the Hub.", "source")
    if isinstance(exc, RemoteEntryNotFoundError):
        return UserError("not_found", f"{repo_id} is missing a file it needs (config.json?); it may not be a "
                         "transformers model.", "source")
    if isinstance(exc, (LocalEntryNotFoundError, OfflineModeIsEnabled, httpx2.ConnectError, httpx2.TimeoutException)):
        return offline_error(repo_id)
    if isinstance(exc, HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else None
        if status == 401:
            return UserError("bad_token", "The Hub rejected your token; paste a valid one (hf_…).", "token")
        return UserError("hub_error", f"The Hub answered {status} for {repo_id}; try again later.", "source")
    if isinstance(exc, httpx2.HTTPError):  # a dropped connection the client could not resume
        return UserError("network", f"The connection to the Hub broke while fetching {repo_id}; try again "
                         "(finished files are kept).", "source")
    return exc
