"""Public Api methods for the Cache Profile tab: presets, a profile job, snapshots of its layout."""
from ..envelope import public
from ..errors import UserError
from ..profile import kv_bytes, presets, service
from ..validate import integer, params_dict


class ProfileMethods:
    @public
    def profile_presets(self, params=None):
        """Both presets for this machine, sized for {length, block_size} (defaults 100,000 and 16)."""
        p = params_dict(params)
        length = integer(p, "length", 100_000, 1, service.MAX_LENGTH)
        block_size = integer(p, "block_size", 16, 1, service.MAX_BLOCK_SIZE)
        bpt, source = kv_bytes.for_loaded(self._state.model)
        n_blocks = -(-length // block_size)
        weights = kv_bytes.weights_bytes(self._state.model)
        return {"presets": [presets.detected(weights), presets.constrained(n_blocks, block_size * bpt)],
                "bytes_per_token": bpt, "bytes_per_token_source": source, "l2_note": presets.L2_NOTE,
                "gpu_modelled": presets.gpu()["modelled"]}

    @public
    def profile(self, params=None):
        """Start a profile job → {job_id}; its result is the summary, per-block arrays and snapshot steps."""
        state = self._state
        loaded = state.model
        req = service.parse(params, *kv_bytes.for_loaded(loaded), kv_bytes.weights_bytes(loaded))
        service.precheck(req)
        if req.trace == "model" and loaded is None:
            raise UserError("no_model", "A model trace needs a loaded model; load one or pick the synthetic trace.", "trace")

        def work(progress):
            matrix = None
            if req.trace == "model":
                from ..attention.extract import attention_view

                progress(0.0, "Running the model")
                matrix = attention_view(loaded, req.text, req.layer, req.head, req.aggregate)["matrix"]
            result, kept = service.run(req, progress, matrix)
            state._last_profile = kept  # only a finished run replaces the layout the scrubber shows
            return result

        job = state.jobs.start("profile", work, exclusive=True)
        return {"job_id": job.id}

    @public
    def profile_snapshot(self, params=None):
        """{index} or {step} → the tier of every block at that snapshot of the last finished profile."""
        return service.snapshot(getattr(self._state, "_last_profile", None), params)

