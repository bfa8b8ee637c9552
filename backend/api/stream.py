"""Public Api methods for the live attention stream (see backend/api/__init__.py for the rules).

The session (backend.attention.stream.StreamSession) lives in `_state.stream`. Every
call that runs or reads it holds `_state.model_lock`, so two calls never run the
model at once and a model swap never lands mid-step. A step response carries O(n)
numbers: the new row of the view on screen, never the matrix.
"""
import numpy as np

from ..envelope import public
from ..errors import UserError
from ..validate import integer, number, params_dict, text

_LOCK_WAIT = 30.0   # seconds a call waits for a running step (or model swap) before answering "busy"
MAX_STEPS = 256     # steps per stream_step call: keeps one call short enough to stay responsive
ROUND = 6           # decimals sent over the bridge (float32 carries ~7)


def _rounded(row) -> list[float]:
    return np.round(np.asarray(row, dtype=np.float64), ROUND).tolist()


def _parse_view(value, layers: int, heads: int, field: str) -> tuple:
    """{layer: int (negative counts from the end) | "all", head: int | null} → (layer, head), normalised."""
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise UserError("bad_input", "view must be an object like {\"layer\": -1, \"head\": null}.", field or "params")
    layer = value.get("layer", -1)
    head = value.get("head")
    if layer == "all":
        return "all", None
    if isinstance(layer, bool) or not isinstance(layer, int) or not -layers <= layer < layers:
        raise UserError("bad_input", f"layer must be \"all\" or between {-layers} and {layers - 1} (−1 = last); got {str(layer)[:20]!r}.",
                        f"{field}.layer" if field else "layer")
    if head is not None and (isinstance(head, bool) or not isinstance(head, int) or not 0 <= head < heads):
        raise UserError("bad_input", f"head must be null (mean over heads) or between 0 and {heads - 1}; got {str(head)[:20]!r}.",
                        f"{field}.head" if field else "head")
    return layer % layers, head


def _cells(grid) -> list:
    """Pooled cells as JSON: 6 decimals, null where a cell has no key at or before its queries."""
    return [None if np.isnan(x) else x for x in np.round(np.asarray(grid, np.float64), ROUND).tolist()]


def _history(session, v: int) -> dict:
    """A view's past rows: every row while the stream fits its cells, else the pooled cells (max and mean)."""
    if not session.pooled:
        return {"rows": [_rounded(r) for r in session.history(v)], "cells": None}
    c = session.history_cells(v)
    return {"rows": None, "cells": {"row_edges": c["row_edges"].tolist(), "col_edges": c["col_edges"].tolist(),
                                    "max": [_cells(r) for r in c["max"]], "mean": [_cells(r) for r in c["mean"]]}}


def _view_json(view: tuple) -> dict:
    return {"layer": view[0], "head": view[1]}


def _progress(session, v: int) -> dict:
    """Where the stream stands, in view v: what Step and State both report."""
    out = {"position": session.position, "view": _view_json(session.view), "sinks": session.sinks(v),
           "heavy_hitters": session.heavy_hitters(v), "sink_mass_by_layer": session.sink_mass_by_layer(),
           "done": session.done}
    if session.message:
        out["message"] = session.message
    return out


def _recommendation(session) -> dict:
    """The recommended sink count, per layer and overall, with the lead shares it was read from (sinks.py)."""
    from ..attention import sinks as S

    shares = session.lead_shares()
    out = {"recommended_sinks": session.recommended_sinks(), "recommended_sinks_by_layer": session.recommended_sinks_by_layer(),
           "lead_share_by_layer": [[None if np.isnan(x) else round(float(x), ROUND) for x in row] for row in shares],
           "recommended_sinks_note": None}
    need = S.RECOMMEND_GAP + S.RECOMMEND_MIN_QUERIES
    if session.position < need:
        out["recommended_sinks_note"] = (f"needs {need} tokens (each leading token is judged on the queries at least "
                                         f"{S.RECOMMEND_GAP} tokens after it; {session.position} so far)")
    return out


class StreamMethods:
    def _stream_lock(self):
        lock = self._state.model_lock
        if not lock.acquire(timeout=_LOCK_WAIT):
            raise UserError("busy", "The model is busy (a stream step or a model load is running); try again in a moment.")
        return lock

    def _session(self):
        """The running session; resets it when the loaded model changed under it."""
        session = self._state.stream
        if session is None:
            raise UserError("no_stream", self._state.stream_note or "No stream yet; press Start.")
        if session.loaded is not self._state.model:
            self._state.stream = None
            raise UserError("no_stream", "The model changed since Start; the stream was reset. Press Start to stream with the new model.")
        return session

    @public
    def stream_start(self, params=None):
        from ..attention.extract import encode, token_labels
        from ..attention.stream import CELLS, StreamSession

        params = params_dict(params)
        loaded = self._state.model
        if loaded is None:
            raise UserError("no_model", "Load a model first (Model Hub tab).")
        prompt = text(params, "prompt")
        generate = integer(params, "generate", 0, lo=0, hi=loaded.context_length)
        temperature = number(params, "temperature", 0.0, lo=0.0, hi=10.0)
        seed = integer(params, "seed", 0, lo=0, hi=2**63 - 1)
        threshold = number(params, "sink_threshold", 0.10, lo=0.001, hi=1.0)
        fraction = number(params, "heavy_fraction", 0.10, lo=0.0, hi=1.0)
        sink_count = integer(params, "sink_count", 4, lo=1, hi=64)
        cells = integer(params, "cells", CELLS, lo=16, hi=1024)
        layers, heads = int(loaded.spec["layers"]), int(loaded.spec["heads"])
        view = _parse_view(params.get("view"), layers, heads, "view")

        lock = self._stream_lock()
        try:
            self._state.stream = None  # a new prompt always starts clean, even if what follows fails
            self._state.stream_note = None
            try:
                ids = encode(loaded, prompt, check_context=False)
            except UserError as exc:  # extract speaks of "text"; here the field is the prompt
                raise UserError(exc.code, exc.message.replace("text", "prompt", 1), "prompt") from None
            # A prompt longer than the context streams up to it and says so (issue #11); the state is
            # bounded (backend/attention/stream.py), so the context is the only limit.
            limit = loaded.context_length
            note = None
            if len(ids) > limit:
                note = f"The prompt is {len(ids):,} tokens but the model's context is {limit:,}: streaming its first {limit:,} tokens."
                prompt_tokens_given, ids = len(ids), ids[:limit]
            session = StreamSession(loaded, ids, lambda i: token_labels(loaded.tokenizer, i), generate=generate,
                                    temperature=temperature, seed=seed, sink_threshold=threshold,
                                    heavy_fraction=fraction, sink_count=sink_count, cells=cells)
            session.view = view
            self._state.stream = session
        finally:
            lock.release()
        return {"prompt_tokens": session.n_prompt, "tokens": list(session.tokens), "context_length": session.context_length,
                "max_tokens": session.max_tokens, "n_layers": layers, "n_heads": heads, "view": _view_json(view),
                "generate": generate, "history_bytes": session.history_bytes(), "state_bound_bytes": session.state_bound(),
                "pooled": session.pooled, "cells": session.history_edges() if session.pooled else None,
                **({"note": note, "prompt_tokens_given": prompt_tokens_given} if note else {})}

    @public
    def stream_step(self, params=None):
        params = params_dict(params)
        steps = integer(params, "steps", 1, lo=1, hi=MAX_STEPS)
        lock = self._stream_lock()
        try:
            session = self._session()
            if "view" in params:
                session.view = _parse_view(params["view"], session.layers, session.heads, "view")
            v = session.view_index(*session.view)
            out = []
            for _ in range(steps):
                step = session.step()
                if step is None:
                    break
                out.append({"position": step["position"], "token": step["token"], "token_id": step["token_id"],
                            "generated": step["generated"], "row": _rounded(session.newest_row(v)),
                            "step_seconds": round(step["step_seconds"], 6)})
                if session.pooled:  # the pooled history's newest row bin: O(cells) numbers
                    cur = session.current_cells(v)
                    out[-1]["cells_row"] = {"row": cur["row"], "max": _cells(cur["max"]), "mean": _cells(cur["mean"])}
            return {"steps": out, **_progress(session, v)}
        finally:
            lock.release()

    @public
    def stream_view(self, params=None):
        params = params_dict(params)
        lock = self._stream_lock()
        try:
            session = self._session()
            session.view = _parse_view(params, session.layers, session.heads, "")
            v = session.view_index(*session.view)
            return {"view": _view_json(session.view), "tokens": list(session.tokens[: session.position]),
                    **_history(session, v), "sinks": session.sinks(v),
                    "heavy_hitters": session.heavy_hitters(v), "position": session.position}
        finally:
            lock.release()

    @public
    def stream_state(self, params=None):
        params_dict(params)
        lock = self._stream_lock()
        try:
            try:
                session = self._session()
            except UserError as exc:
                return {"active": False, "message": exc.message}
            v = session.view_index(*session.view)
            progress = _progress(session, v)
            progress["sink_table"] = progress.pop("sinks")
            return {"active": True, "tokens": list(session.tokens[: session.position]),
                    "prompt_tokens": session.n_prompt, "max_tokens": session.max_tokens,
                    "sink_grid": session.sink_grid(), **_recommendation(session),
                    "history_bytes": session.history_bytes(), **progress}
        finally:
            lock.release()

    @public
    def stream_reset(self, params=None):
        params_dict(params)
        lock = self._stream_lock()
        try:
            self._state.stream = None
            self._state.stream_note = None
        finally:
            lock.release()
        return {"reset": True}

    @public
    def stream_export(self, params=None):
        params = params_dict(params)
        lock = self._stream_lock()
        try:
            session = self._session()
            view = _parse_view(params, session.layers, session.heads, "") if params else session.view
            v = session.view_index(*view)
            return {"model": session.loaded.source, "view": _view_json(view),
                    "settings": {"sink_threshold": session.sink_threshold, "heavy_fraction": session.heavy_fraction,
                                 "sink_count": session.sink_count, "generate": session.generate,
                                 "temperature": session.temperature},
                    "prompt_tokens": session.n_prompt, "tokens": list(session.tokens[: session.position]),
                    "token_ids": list(session.token_ids[: session.position]),
                    **_history(session, v), "sink_table": session.sinks(v),
                    "heavy_hitters": session.heavy_hitters(v), "sink_grid": session.sink_grid(),
                    **_recommendation(session), "sink_mass_by_layer": session.sink_mass_by_layer()}
        finally:
            lock.release()
