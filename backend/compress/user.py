"""User prefill methods: a policy file (#17) whose rule is `score(layer, settings)` (README "Write your own
prefill method"). Same files, folder and trust rules as the eviction rules (custom_policies.py);
this module turns such a file into a method of the registry (methods/__init__.py).

A prefill file declares NAME, score(layer, settings) -> torch tensor [KV heads, n] (higher
is kept first; `layer` is a backend.compress.layer.LayerInputs), and optionally
BUDGET = "uniform" | "pyramid" | "adaptive" (default uniform) and PROTECT (positions the
method always keeps, for the note when they exceed the budget; default 0). Any error
inside score, a wrong shape or a NaN is a PolicyFileError naming the file and line.
"""

from .methods import METHODS, Method

_USER: dict = {}
BUDGETS = ("uniform", "pyramid", "adaptive")


class PrefillFile:
    """A loaded prefill file: what the registry lists, and the scorer the prefill calls."""

    prefill = True

    def __init__(self, module, name: str, file: str, source: str):
        from ..eviction.custom_policies import PolicyFileError

        self.name, self.file, self.source, self._score = name, file, source, module.score
        self.__name__ = f"user:{file}"  # the prefill scores once per distinct scorer
        self.budget = getattr(module, "BUDGET", "uniform")
        if self.budget not in BUDGETS:
            raise PolicyFileError("bad_declaration", file, None, f"BUDGET must be one of {', '.join(BUDGETS)}.")
        self.protect = getattr(module, "PROTECT", 0)
        if not isinstance(self.protect, int) or self.protect < 0:
            raise PolicyFileError("bad_declaration", file, None, "PROTECT must be a whole number ≥ 0.")
        if name in METHODS:
            raise PolicyFileError("name_taken", file, None, f"NAME {name!r} is a built-in prefill method's; pick another.")
        self.line = module.score.__code__.co_firstlineno
        self.label = str(getattr(module, "LABEL", name))[:60]
        self.description = str(getattr(module, "DESCRIPTION", (module.__doc__ or "").strip()))[:400]

    def score(self, layer, settings):
        import torch

        from ..eviction.custom_policies import PolicyFileError, line_in

        try:
            s = self._score(layer, settings)
        except Exception as exc:  # noqa: BLE001 - the user's code: its mistake, named
            raise PolicyFileError("score_error", self.file, line_in(exc.__traceback__, self.file) or self.line,
                                  f"score raised {type(exc).__name__}: {str(exc)[:200]}") from None
        if not isinstance(s, torch.Tensor) or tuple(s.shape) != (layer.kv_heads, layer.n):
            raise PolicyFileError("bad_score", self.file, self.line, f"score must return a torch tensor of shape "
                                  f"[{layer.kv_heads}, {layer.n}] (KV heads, positions), got "
                                  f"{tuple(getattr(s, 'shape', ())) or type(s).__name__}.")
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


def prefill_file(module, name: str, file: str, source: str) -> PrefillFile:
    return PrefillFile(module, name, file, source)


def user_methods() -> dict:
    return dict(_USER)


def add(file: PrefillFile) -> None:
    """One more prefill method: a sweep worker's shipped file (custom_policies.load_shipped)."""
    _USER[file.name] = Method(file, file.budget, "(user file)")


def publish(files: dict) -> None:
    """The registry's prefill files (name → PrefillFile) become the user's prefill methods."""
    _USER.clear()
    _USER.update({name: Method(f, f.budget, "(user file)") for name, f in files.items()})


