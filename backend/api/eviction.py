"""Public Api methods for eviction (see backend/api/__init__.py for the rules)."""
from ..envelope import public
from ..errors import UserError
from ..eviction import DEFAULTS, POLICIES, parse, simulate, traces
from ..validate import params_dict
from .attention import require_model
from .policies import policy_registry


def _check_layer_head(spec: dict, p) -> None:
    """The model's shape is known: say now, not after a forward pass, that a layer or head is out of range."""
    layers, heads = int(spec.get("layers") or 0), int(spec.get("heads") or 0)
    if layers and not -layers <= p.layer < layers:
        raise UserError("bad_input", f"layer must be between {-layers} and {layers - 1} (−1 = last).", "layer")
    if heads and p.aggregate == "head" and not 0 <= p.head < heads:
        raise UserError("bad_input", f"head must be blank (mean over heads) or between 0 and {heads - 1}.", "head")


class EvictionMethods:
    @public
    def eviction_policies(self, params=None):
        params_dict(params)
        users = policy_registry(self._state).listing()  # user policies (rule files) beside the built-ins
        return {"policies": POLICIES + users.pop("policies"), "defaults": DEFAULTS, "user_policies": users}

    @public
    def simulate(self, params=None):
        """Start a simulation job; its result is {"trace": {...}, "results": [one dict per policy]}."""
        p = parse(params, policy_registry(self._state).snapshot())  # bad settings fail here, naming the field
        loaded = require_model(self._state) if p.trace == "model" else None
        if loaded is not None:
            _check_layer_head(loaded.spec, p)

        def work(progress):
            if loaded is None:
                return simulate(p, traces.synthetic(p), progress)
            progress(0.0, "Running the model on the text")
            trace, info = traces.from_model(loaded, p)
            out = simulate(p, trace, progress)
            out["trace"].update(info)
            return out

        return {"job_id": self._state.jobs.start("simulate", work).id}
