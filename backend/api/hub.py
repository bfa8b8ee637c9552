"""Public Api methods for the Model Hub tab: search, info card, Local list, token, folder picker.

The token is resolved here (session > HF_TOKEN > token file > .env) and handed to
the hub services; answers only ever carry its source and a masked tail.
"""
from pathlib import Path

from ..envelope import public
from ..errors import UserError
from ..validate import choice, integer, params_dict, text

_DEVICES = ("auto", "cuda", "mps", "cpu")
_PRECISIONS = ("auto", "fp16", "bf16", "fp32")
_TASKS = ("text-generation", "any")


def _repo_id(params: dict, name: str = "repo_id") -> str:
    value = text(params, name, max_len=200).strip()
    if any(c.isspace() for c in value):
        raise UserError("bad_input", f"{name} must look like owner/name, without spaces.", name)
    return value


class HubMethods:
    @public
    def hub_search(self, params=None):
        from ..hub.search import SORTS, search_models
        from ..hub.token import resolve_token

        params = params_dict(params)
        query = text(params, "query", "", max_len=200, allow_empty=True)
        limit = integer(params, "limit", 20, lo=1, hi=100)
        task = choice(params, "task", _TASKS, "text-generation")
        sort = choice(params, "sort", SORTS, "downloads")
        token, _ = resolve_token(self._state)
        return search_models(query, limit, None if task == "any" else task, sort, token)

    @public
    def hub_model_info(self, params=None):
        from ..hub.info import model_card
        from ..hub.token import resolve_token

        params = params_dict(params)
        repo_id = _repo_id(params)
        device = choice(params, "device", _DEVICES, "auto")
        precision = choice(params, "precision", _PRECISIONS, "auto")
        token, _ = resolve_token(self._state)
        return model_card(repo_id, device, precision, token)

    @public
    def local_models(self, params=None):
        """The demo model, causal LMs in the HF cache, and (with `folder`) a folder the user picked."""
        from ..hub.local import local_models

        params = params_dict(params)
        folder = text(params, "folder", "", max_len=4096, allow_empty=True).strip()
        return {"models": local_models(folder or None)}

    @public
    def gguf_info(self, params=None):
        """The card of a GGUF file in the Local list: its header, and the memory it takes once dequantized."""
        from ..hub.memory import estimate_memory
        from ..models.bundled import ALIAS, smollm2_path
        from ..models.gguf import read_header

        params = params_dict(params)
        path = text(params, "path", max_len=4096).strip()
        device = choice(params, "device", _DEVICES, "auto")
        precision = choice(params, "precision", _PRECISIONS, "auto")
        file = smollm2_path() if path == ALIAS else Path(path).expanduser()
        if not file.name.lower().endswith(".gguf"):
            raise UserError("bad_input", "path must be a .gguf file (or 'smollm2').", "path")
        try:
            summary = read_header(file).summary()
        except UserError as exc:  # the header reader names "source"; here the input is "path"
            raise UserError(exc.code, exc.message, "path") from None
        # Loading dequantizes every tensor: the memory is parameters × the precision loaded, not the file size.
        memory = estimate_memory(summary["parameters"], device, precision)
        return {**summary, "path": str(file), "format": "gguf", "memory": memory,
                "dequantized_bytes_per_element": memory["bytes_per_element"]}

    @public
    def set_token(self, params=None):
        """Use a pasted token for this session only (never saved); an empty one clears it."""
        from ..hub.token import token_status
        from ..secrets import remember_secret

        token = text(params_dict(params), "token", "", max_len=400, allow_empty=True).strip()
        if token and (len(token) < 8 or not token.isascii() or any(c.isspace() or not c.isprintable() for c in token)):
            raise UserError("bad_input", "That does not look like a Hugging Face token (hf_…); paste it again.", "token")
        remember_secret(token)
        self._state.session_token = token or None
        return {"token": token_status(self._state)}

    @public
    def token_status(self, params=None):
        from ..hub.token import token_status

        params_dict(params)
        return token_status(self._state)

    @public
    def pick_folder(self, params=None):
        params_dict(params)
        window = getattr(self._state, "window", None)
        if window is None:
            raise UserError("no_dialog", "Type the folder path — there is no file dialog in browser mode.", "folder")
        import webview  # only the desktop front has a window, and it has pywebview

        picked = window.create_file_dialog(webview.FOLDER_DIALOG)
        if not picked:
            return {"path": None, "cancelled": True}
        return {"path": str(picked[0] if isinstance(picked, (list, tuple)) else picked)}
