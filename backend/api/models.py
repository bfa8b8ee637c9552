"""Public Api methods for loading a model and describing the loaded one."""
from ..envelope import public
from ..validate import choice, flag, params_dict, text


def _token_for(state):
    """The token the Hub calls should use (session token > HF_TOKEN > token file > .env); never returned."""
    try:
        from ..hub.token import resolve_token
    except ImportError:
        return state.session_token
    return resolve_token(state)[0]


class ModelMethods:
    @public
    def load_model(self, params=None):
        params = params_dict(params)
        source = text(params, "source", "demo", max_len=500)
        device = choice(params, "device", ("auto", "cuda", "mps", "cpu"), "auto")
        precision = choice(params, "precision", ("auto", "fp16", "bf16", "fp32"), "auto")
        trust = flag(params, "trust_remote_code", False)
        state = self._state
        token = _token_for(state)

        def work(report):
            from ..heavy import import_heavy
            from ..models.load import load_model
            from ..models.threads import set_threads_for

            report(0.0, "Starting")
            import_heavy()  # waits for the window's background preload instead of racing it

            loaded = load_model(source.strip(), device, precision, trust, token, report)
            report(0.99, "Ready")  # last chance to cancel before the swap
            with state.model_lock:
                state.model = loaded  # the old model stays in use until this line
                if state.stream is not None:  # a stream belongs to the model it started on: free it with it
                    state.stream = None
                    state.stream_note = "The model changed since Start; the stream was reset. Press Start to stream with the new model."
                set_threads_for(loaded.spec["parameters"])
            return _describe(loaded)

        job = state.jobs.start("load", work, exclusive=True)
        return {"job_id": job.id}

    @public
    def defaults(self, params=None):
        """Every view's defaults for the loaded model on its device (backend/defaults.py): one budget (C, S, W) and
        one text, Evaluate sized to about a minute here, Retrieval's grid and presets, and a note where a view
        differs. Without a model: {"loaded": false}."""
        params_dict(params)
        loaded = self._state.model
        if loaded is None:
            return {"loaded": False}
        from ..defaults import for_model

        return {"loaded": True, **for_model(loaded.source, loaded.spec, loaded.device, loaded.tokenizer)}

    @public
    def model_info(self, params=None):
        params_dict(params)
        loaded = self._state.model
        return _describe(loaded) if loaded is not None else {"loaded": False}


def _describe(loaded) -> dict:
    return {"loaded": True, "source": loaded.source, "device": loaded.device, "dtype": loaded.dtype, "spec": dict(loaded.spec)}
