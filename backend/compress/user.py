"""User prefill methods: a policy file (#17) whose rule is `score(layer, settings)` (docs/write-your-own-policy.md "Your own
prefill method"). Same files, folder and trust rules as the eviction rules (custom_policies.py);
this module turns such a file into a method of the registry (methods/__init__.py).

A prefill file declares NAME, score(layer, settings) -> torch tensor [KV heads, n] (higher
is kept first; `layer` is a backend.compress.layer.LayerInputs), and optionally
BUDGET = "uniform" | "pyramid" | "adaptive" (default uniform) and PROTECT (positions the
method always keeps, for the note when they exceed the budget; default 0). Any error
inside score, a wrong shape, a NaN or a meta tensor is a PolicyFileError naming the file and line.

score runs in the file's worker process (backend/usercode/pool.py), as a rule does: Cancel
kills it within POLL_SECONDS, a call longer than the score limit is `score_timeout`, and
what it gets is a CPU copy of the layer (changing it changes nothing in the app's cache).
"""
import os

from ..usercode import pool
from ..usercode.errors import PolicyFileError, first_line, line_in, received
from ..usercode.loading import run_module
from .layer import LayerCopy
from .methods import METHODS, Method

_USER: dict = {}
BUDGETS = ("uniform", "pyramid", "adaptive")
SCORE_SECONDS = 60.0  # one layer's score; a fair one takes milliseconds to seconds (SINKVIS_SCORE_LIMIT overrides)
SCORE_ENV = "SINKVIS_SCORE_LIMIT"


class PrefillFile:
    """A loaded prefill file: what the registry lists, and the scorer the prefill calls."""

    prefill = True
    layouts = ("score",)

    def __init__(self, name, file, source, budget, protect, line, label, description, score=None):
        self.name, self.file, self.source, self.budget, self.protect = name, file, source, budget, protect
        self.line, self.label, self.description, self._score = line, label, description, score
        self.__name__ = f"user:{file}"  # the prefill scores once per distinct scorer

    @classmethod
    def read(cls, module, name: str, file: str, source: str) -> "PrefillFile":
        """From the file's module (in a worker): its declarations checked, its score kept."""
        budget = getattr(module, "BUDGET", "uniform")
        if budget not in BUDGETS:
            raise PolicyFileError("bad_declaration", file, None, f"BUDGET must be one of {', '.join(BUDGETS)}.")
        protect = getattr(module, "PROTECT", 0)
        if not isinstance(protect, int) or protect < 0:
            raise PolicyFileError("bad_declaration", file, None, "PROTECT must be a whole number ≥ 0.")
        if name in METHODS:
            raise PolicyFileError("name_taken", file, None, f"NAME {name!r} is a built-in prefill method's; pick another.")
        return cls(name, file, source, budget, protect, first_line(module.score),  # None: a partial, a builtin
                   str(getattr(module, "LABEL", name))[:60],
                   str(getattr(module, "DESCRIPTION", (module.__doc__ or "").strip()))[:400], module.score)

    def without_code(self) -> "PrefillFile":
        """What the app's process keeps: everything but the user's function."""
        return PrefillFile(self.name, self.file, self.source, self.budget, self.protect, self.line, self.label,
                           self.description)

    def shipment(self) -> dict:
        return {"name": self.name, "file": self.file, "source": self.source}

    def score(self, layer, settings):
        """The file's scores [KV, n] for this layer: computed in its worker (or here, in a worker already)."""
        if self._score is not None:
            return self.checked_score(layer, settings)
        from ..jobs import current_job_cancelled
        from ..workers import WorkerDied

        worker = pool.take(self, "score", _stop_if_cancelled)
        try:
            s = received(worker.call(_score_in_worker, self.shipment(), portable(layer), settings, score_limit(),
                                     should_stop=current_job_cancelled))
        except WorkerDied as exc:
            raise PolicyFileError("score_crashed", self.file, self.line,
                                  f"score ended its process in layer {layer.layer} ({exc}); a score must return "
                                  "its tensor, not exit (sys.exit, os._exit) or crash the interpreter.") from None
        finally:
            pool.give_back(worker, self)
        return s.to(layer.keys.device)

    def checked_score(self, layer, settings):
        """score run here, its result checked: any mistake a PolicyFileError with the file and line."""
        import torch

        try:
            s = self._score(layer, settings)
        except BaseException as exc:  # noqa: BLE001 - the user's code (sys.exit included): its mistake, named
            raise PolicyFileError("score_error", self.file, line_in(exc.__traceback__, self.file) or self.line,
                                  f"score raised {type(exc).__name__}: {str(exc)[:200]}") from None
        if not isinstance(s, torch.Tensor) or tuple(s.shape) != (layer.kv_heads, layer.n):
            raise PolicyFileError("bad_score", self.file, self.line, f"score must return a torch tensor of shape "
                                  f"[{layer.kv_heads}, {layer.n}] (KV heads, positions), got "
                                  f"{tuple(getattr(s, 'shape', ())) or type(s).__name__}.")
        if s.is_meta:
            raise PolicyFileError("bad_score", self.file, self.line, f"score returned a meta tensor in layer "
                                  f"{layer.layer} (a shape without values); return real numbers.")
        if torch.isnan(s).any():
            raise PolicyFileError("bad_score", self.file, self.line, f"score returned NaN in layer {layer.layer}.")
        return s

    def protected(self, settings) -> int:
        return self.protect

    def shipment(self) -> dict:
        """What a sweep sends to its workers (local processes or Ray) so they can load this file."""
        return {"name": self.name, "file": self.file, "source": self.source}

    def listing(self) -> dict:
        return {"name": self.name, "label": self.label, "description": self.description, "user": True,
                "file": self.file, "prefill": True, "budget": self.budget, "protect": self.protect}


def score_limit() -> float:
    try:
        return max(0.01, float(os.environ.get(SCORE_ENV, SCORE_SECONDS)))
    except ValueError:
        return SCORE_SECONDS


def _stop_if_cancelled():
    from ..errors import Cancelled
    from ..jobs import current_job_cancelled

    if current_job_cancelled():
        raise Cancelled()


def portable(layer) -> LayerCopy:
    """A CPU copy of a layer's inputs for the worker: the user's code never holds the live cache."""
    return LayerCopy(layer)


def prepare_score(shipment, layouts) -> None:
    """In a pool worker: run the file once and keep its score (the file was checked when it loaded)."""
    module = run_module(shipment["source"], shipment["file"])
    pool.keep(shipment, PrefillFile.read(module, shipment["name"], shipment["file"], shipment["source"]))


PrefillFile.prepare = staticmethod(prepare_score)


def _score_in_worker(shipment, layer, settings, limit):
    """In the file's worker: score, checked and watched; a CPU float tensor or the PolicyFileError, shipped."""
    from ..usercode.watch import watching_steps

    user = pool.loaded(shipment)

    def stuck(step, took):
        return PolicyFileError("score_timeout", user.file, user.line,
                               f"score was stopped in layer {step}: it had taken {took:.1f} s and not finished, over "
                               f"the limit of {limit:g} s a layer ({SCORE_ENV}). Look for a loop that never ends.")

    try:
        with watching_steps(lambda: layer.layer, limit, stuck):
            return user.checked_score(layer, settings).detach().float().contiguous().clone()
    except PolicyFileError as exc:
        return exc.shipped()


def user_methods() -> dict:
    return dict(_USER)


def add(file: PrefillFile) -> None:
    """One more prefill method: a sweep worker's shipped file (custom_policies.load_shipped)."""
    _USER[file.name] = Method(file, file.budget, "(user file)")


def publish(files: dict) -> None:
    """The registry's prefill files (name → PrefillFile) become the user's prefill methods."""
    _USER.clear()
    _USER.update({name: Method(f, f.budget, "(user file)") for name, f in files.items()})
