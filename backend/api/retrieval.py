"""Public Api methods for Retrieval: pass-key and needle grids under eviction (backend/retrieval)."""
from ..envelope import public
from ..validate import params_dict
from .attention import model_facts, require_model
from .policies import policy_registry

# Measured (docs/retrieval.md): main.py retrieval --model demo --task pass_key|needle --lengths 96,144,192
# --depths 0,0.5,1 --cache-size 32 --chunk 1 — Full Cache 0/9 on both tasks.
DEMO_NOTE = ("The demo model (3M parameters, context 256) does not retrieve: even with Full Cache it found 0 of 9 "
             "pass keys and 0 of 9 needles (lengths 96/144/192 × depths 0/0.5/1), so every policy scores 0 here. "
             "Load SmolLM2 (Model Hub: smollm2, or --model smollm2) to see retrieval fail under eviction.")


class RetrievalMethods:
    @public
    def retrieval_info(self, params=None):
        from ..retrieval.request import PROTOCOLS, defaults, protocol_policies
        from ..retrieval.tasks import DESCRIPTIONS

        params_dict(params)
        policy_registry(self._state)  # the user's policy files (#17) take part in the streaming protocol
        loaded = self._state.model
        return {"tasks": list(DESCRIPTIONS), "task_descriptions": DESCRIPTIONS, "protocols": list(PROTOCOLS),
                "policies": protocol_policies("streaming"), "prefill_policies": protocol_policies("prefill"),
                "defaults": defaults(loaded) if loaded is not None else None,
                "demo_note": DEMO_NOTE if loaded is not None and loaded.source == "demo" else None}

    @public
    def retrieval_estimate(self, params=None):
        """Before Run: how long the grid will take here (three forwards timed on the loaded model, × the cells)."""
        from ..retrieval.estimate import grid_seconds
        from ..retrieval.request import parse

        params = params_dict(params)
        loaded = require_model(self._state)
        policy_registry(self._state)
        request = parse(loaded, params)
        with self._state.model_lock:
            out = grid_seconds(loaded, request["protocol"], request["policies"], request["lengths"], request["depths"],
                               request["settings"])
        return {**out, "policies": request["policies"], "lengths": request["lengths"], "depths": request["depths"]}

    @public
    def retrieval(self, params=None):
        from ..retrieval.request import parse

        params = params_dict(params)
        state = self._state
        loaded = require_model(state)
        policy_registry(state)
        request = parse(loaded, params)

        def work(report):
            from ..errors import UserError
            from ..retrieval.grid import run_grid

            from ..errors import Cancelled

            facts = model_facts(loaded)

            def guarded(*args, **kwargs):  # a run belongs to the model it started on
                if state.model is not loaded:
                    raise UserError("model_changed", "Another model was loaded during the run, so it was stopped. "
                                    "Press Run again for the new one.")
                if kwargs.get("partial"):  # the grid so far names its model, as the final one does
                    kwargs["partial"]["model"] = facts
                report(*args, **kwargs)

            try:
                result = run_grid(loaded, request["task"], request["protocol"], request["policies"], request["lengths"],
                                  request["depths"], request["settings"], request["custom"], guarded)
            except Cancelled as cancelled:  # the cells kept on Cancel name their model too
                if cancelled.partial is not None:
                    cancelled.partial["model"] = facts
                raise
            result["model"] = facts
            return result

        job = state.jobs.start("retrieval", work, exclusive=True)
        return {"job_id": job.id, "task": request["task"], "protocol": request["protocol"],
                "policies": request["policies"], "lengths": request["lengths"], "depths": request["depths"],
                "settings": request["settings"], "cells": len(request["lengths"]) * len(request["depths"])}
