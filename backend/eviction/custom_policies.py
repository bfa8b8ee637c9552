"""User eviction policies: one plain Python file each (docs/write-your-own-policy.md).

A file declares NAME, PROTECT_FIRST, PROTECT_RECENT and the rule, on_enter(t, run) and
optionally on_attention(score, attention, age, t, run) (the contract is in
kernels/eviction/custom.py); LABEL and DESCRIPTION are optional. Loading compiles the
rule with Numba, so it runs as fast as the built-ins.

Loading a file runs its code, as trust_remote_code does for a model: the files in the
policies folder (policies_folder()) load without asking; a file or a folder anywhere
else loads only when the caller says it trusts it. Every mistake is a PolicyFileError
naming the file and, where there is one, the line; one bad file never stops the others.
The code runs in worker processes only (backend/usercode): this process holds what they
describe (describe()), and each run goes to the rule's worker.
"""
import hashlib
import inspect
import os
import re
import sys
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..compress.user import PrefillFile
from ..errors import UserError
from ..usercode import pool
from ..usercode.errors import PolicyFileError, first_line, line_in  # noqa: F401 - line_in: for the callers of old
from ..usercode.loading import load_in_worker, read_file, run_module
from ..labels import BUILT_IN
from .policies import NAMES

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
RESERVED = set(NAMES) | set(BUILT_IN) | {"all"}  # every built-in policy and prefill method (one label each)
ENTER_ARGS = ("t", "run")
ATTENTION_ARGS = ("score", "attention", "age", "t", "run")


def policies_folder() -> Path:
    """~/.config/sinkvis/policies (XDG_CONFIG_HOME, or %APPDATA% on Windows); SINKVIS_POLICY_DIR overrides."""
    if os.environ.get("SINKVIS_POLICY_DIR"):
        return Path(os.environ["SINKVIS_POLICY_DIR"]).expanduser()
    if sys.platform == "win32" and os.environ.get("APPDATA"):
        return Path(os.environ["APPDATA"]) / "sinkvis" / "policies"
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "sinkvis" / "policies"


@dataclass
class UserPolicy:
    name: str
    label: str
    description: str
    file: str
    source: str
    protect_first: int | str     # an int, or "sinks" (the run's S)
    protect_recent: int | str    # an int, or "window" (the run's W)
    rescores: bool               # has on_attention (decides per layer and KV head)
    lines: dict = field(default_factory=dict)  # function name → the line of its def
    rule: tuple | None = field(default=None, repr=False, compare=False)  # (on_enter, on_attention) compiled here

    prepare = None   # set below: what a pool worker runs to get ready (module-level, crosses the pipe by name)
    layouts = ("simulate", "evaluate")  # the loop is compiled once per trace layout: C arrays, strided rows

    def compiled(self) -> tuple:
        """The Numba-compiled (on_enter, on_attention), compiled in this process on first use: in a
        worker (the app's own process never calls it: its runs go to the rule's worker), a test, a bench."""
        if self.rule is None:
            self.rule = load_source(self.source, self.file).rule
        return self.rule

    @property
    def on_enter(self):
        return self.compiled()[0]

    @property
    def on_attention(self):
        return self.compiled()[1]

    def listing(self) -> dict:
        return {"name": self.name, "label": self.label, "description": self.description, "needs_future": False,
                "user": True, "file": self.file, "protect_first": self.protect_first,
                "protect_recent": self.protect_recent, "rescores": self.rescores}

    def protections(self, capacity: int, sinks: int, window: int) -> tuple[int, int]:
        first = sinks if self.protect_first == "sinks" else self.protect_first
        recent = window if self.protect_recent == "window" else self.protect_recent
        if first + recent > capacity:
            raise PolicyFileError("protects_too_much", self.file, None,
                                  f"{self.name} protects {first} first + {recent} recent keys, more than the cache "
                                  f"size {capacity}: nothing could be evicted. Raise cache_size or protect fewer.",
                                  "cache_size")
        return first, recent

    def simulation(self, trace, capacity: int, sinks: int, window: int, tau: int, record_evictions: bool = False):
        """A kernels.eviction.Simulation-like object running this rule (run, counters, kept, ...)."""
        from kernels.eviction.custom import CustomSimulation

        first, recent = self.protections(capacity, sinks, window)
        return CustomSimulation(self.on_enter, self.on_attention, first, recent, trace, capacity, sinks, window, tau,
                                record_evictions)

    def shipment(self) -> dict:
        """What a sweep sends to its workers (local processes or Ray) so they can load this rule."""
        return {"name": self.name, "file": self.file, "source": self.source}

    def evaluate_maker(self):
        """Evaluate's decision maker for this rule (backend/evaluate/deciders.py): one rule
        simulation per (layer, KV head), driven a token at a time on the attention it paid.
        In the app it lives in the rule's worker process (remote_decider.py: Cancel kills it);
        in a worker already (a sweep's), right here, watched for a stuck step."""
        from ..evaluate.deciders import KernelDecider
        from ..evaluate.remote_decider import RemoteDecider
        from ..usercode.watch import current_step, step_limit, watching
        from ..workers import in_worker

        policy = self

        class RuleDecider(KernelDecider):
            user = True

            def step(self, t, positions, weights):
                with watching(policy, lambda: t, self.sims[0].settings, self.limit):
                    super().step(t, positions, weights)
                for sim in self.sims:
                    policy.check(sim)

            def step_block(self, t0, positions, weights):
                # A chunk is q steps of each unit in turn: the watch follows the step of the unit
                # running now (the first one short of the chunk's last step), so a step, not the chunk, is timed.
                last = t0 + weights.shape[1] - 1

                def step_now():
                    return next((s for s in map(current_step, self.sims) if s < last), last)

                with watching(policy, step_now, self.sims[0].settings, self.limit):
                    super().step_block(t0, positions, weights)
                for sim in self.sims:
                    policy.check(sim)

        def make(units, n, cache_size, sinks, window, tau):
            if in_worker():
                decider = RuleDecider(policy.simulation, units, n, cache_size, sinks, window, tau)
                decider.sims[0].run(0, 0)  # Numba compiles the loop for this rule once per process: not a step to time
                decider.limit = step_limit()
                return decider
            return RemoteDecider(policy, units, n, cache_size, sinks, window, tau)

        return make

    def check(self, sim) -> None:
        """After a run: a NaN from the rule is an error naming the function, the step and the key."""
        from kernels.eviction.custom import FAULT_ENTER_NAN

        code, step, pos = (int(x) for x in sim.fault)
        if code:
            fn = "on_enter" if code == FAULT_ENTER_NAN else "on_attention"
            raise PolicyFileError("rule_nan", self.file, self.lines.get(fn),
                                  f"{fn} returned NaN at step {step} for the key at position {pos}; a score must be a "
                                  "number (NaN has no order, so no victim could be chosen).")


def _numba_line(message: str, file: str) -> int | None:
    found = re.findall(r'File "([^"]+)", line (\d+)', message)
    lines = [int(n) for f, n in found if f == file]
    return lines[-1] if lines else (int(found[-1][1]) if found else None)


def _numba_reason(text: str) -> str:
    """The one line of a Numba error that says what is wrong (and the signature it tried)."""
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("Failed in ")]
    if not lines:
        return "unknown reason"
    reason = lines[0]
    if len(lines) > 1 and lines[1].startswith(">>>"):
        reason += " " + lines[1][3:].strip()
    return reason[:300]


def _declared(module, file: str, name: str, options: tuple) -> int | str:
    value = getattr(module, name, 0)
    if value in options or (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        return value
    raise PolicyFileError("bad_declaration", file, None,
                          f"{name} must be a whole number ≥ 0 or {' / '.join(repr(o) for o in options)} "
                          f"(got {value!r:.40}).")


def _function(module, file: str, name: str, args: tuple, required: bool):
    fn = getattr(module, name, None)
    if fn is None:
        if required:
            raise PolicyFileError("missing_function", file, None,
                                  f"defines no {name}({', '.join(args)}); every policy needs one.")
        return None
    if not inspect.isfunction(fn):
        raise PolicyFileError("missing_function", file, first_line(fn), f"{name} must be a function (def {name}(...)).")
    params = list(inspect.signature(fn).parameters)
    if len(params) != len(args):
        raise PolicyFileError("bad_signature", file, fn.__code__.co_firstlineno,
                              f"{name} must take {len(args)} arguments ({', '.join(args)}); it takes "
                              f"{len(params)} ({', '.join(params)}).")
    return fn


def load_source(source: str, file: str):
    """Run a policy file's text in this process and compile its rule: a worker's job (load_in_worker;
    pool workers; a sweep's workers), a test's. A UserPolicy, or a PrefillFile for a score file."""
    from numba.core.errors import NumbaError

    from kernels.eviction.custom import compile_rule

    module = run_module(source, file)
    name = getattr(module, "NAME", None)
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise PolicyFileError("bad_declaration", file, None,
                              "NAME must be a short lower-case name (letters, digits, _; e.g. \"h2o_decay\"), "
                              f"got {name!r:.40}.")
    if name in RESERVED:
        raise PolicyFileError("name_taken", file, None, f"NAME {name!r} is a built-in policy's; pick another.")
    if callable(getattr(module, "score", None)) and not hasattr(module, "on_enter"):  # a prefill method (#22)
        return PrefillFile.read(module, name, file, source)
    first = _declared(module, file, "PROTECT_FIRST", ("sinks",))
    recent = _declared(module, file, "PROTECT_RECENT", ("window",))
    on_enter = _function(module, file, "on_enter", ENTER_ARGS, True)
    on_attention = _function(module, file, "on_attention", ATTENTION_ARGS, False)
    try:
        enter, attention = compile_rule(on_enter, on_attention)
    except NumbaError as exc:
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))  # Numba colours its messages
        raise PolicyFileError("compile_error", file, _numba_line(text, file),
                              f"Numba cannot compile the rule: {_numba_reason(text)}") from None
    return UserPolicy(name=name, label=str(getattr(module, "LABEL", name))[:60],
                      description=str(getattr(module, "DESCRIPTION", (module.__doc__ or "").strip()))[:400],
                      file=file, source=source, protect_first=first, protect_recent=recent,
                      rescores=on_attention is not None, rule=(enter, attention),
                      lines={"on_enter": on_enter.__code__.co_firstlineno,
                             **({"on_attention": on_attention.__code__.co_firstlineno} if on_attention else {})})


def describe(source: str, file: str):
    """In a worker (load_in_worker): the file loaded, without its code (what the app's process holds)."""
    loaded = load_source(source, file)
    return replace(loaded, rule=None) if isinstance(loaded, UserPolicy) else loaded.without_code()


def prepare_rule(shipment, layouts) -> None:
    """In a pool worker: compile the rule (once per process) and its loop for these trace layouts."""
    from kernels.eviction import synthetic_trace

    from ..evaluate.deciders import row_trace

    policy = load_shipped([shipment])[shipment["name"]]
    pool.keep(shipment, policy)
    capacity = sum(v for v in (policy.protect_first, policy.protect_recent) if isinstance(v, int)) + 2
    traces = {"simulate": lambda: synthetic_trace(4), "evaluate": lambda: row_trace(4)[0]}
    for layout in layouts:
        policy.simulation(traces[layout](), capacity, 0, 0, 1).run(0, 0)


UserPolicy.prepare = staticmethod(prepare_rule)


class PolicyRegistry:
    """The user policies of one app: the policies folder, a folder the user picked, single files.

    A reload reads every file again but recompiles only those whose text changed. With
    publish (the app's registry), the loaded policies are also offered by Evaluate."""

    def __init__(self, folder: Path | None = None, publish: bool = True):
        self.publish = publish
        self.folder = Path(folder) if folder else policies_folder()
        self.extra_folder: Path | None = None
        self.files: list[str] = []        # single files the user trusted
        self.policies: dict[str, UserPolicy] = {}
        self.prefill: dict = {}           # prefill methods (score files, backend/compress/user.py), kept apart
        self.errors: list[dict] = []
        self._compiled: dict[tuple, UserPolicy] = {}  # (file, text hash) → loaded policy
        self._published: set[str] = set()            # names registered with Evaluate
        self._lock = threading.Lock()

    def _load(self, path) -> UserPolicy:
        loaded = self._load_all([path])[0]
        if isinstance(loaded, PolicyFileError):
            raise loaded
        return loaded

    def _load_all(self, paths) -> list:
        """Each path's UserPolicy / PrefillFile, or its PolicyFileError; the files not seen before (or
        changed) run in one worker process (backend/usercode/loading.py), never in this one."""
        read = []
        for path in paths:
            try:
                file, source = read_file(path)
                read.append((file, source, (file, hashlib.sha256(source.encode()).hexdigest())))
            except PolicyFileError as exc:
                read.append(exc)
        new = {r[2]: r[:2] for r in read if isinstance(r, tuple) and r[2] not in self._compiled}
        for key, loaded in zip(new, load_in_worker(list(new.values()), describe)):
            if not isinstance(loaded, PolicyFileError):
                self._compiled[key] = loaded
            else:
                new[key] = loaded
        return [r if not isinstance(r, tuple) else self._compiled.get(r[2]) or new[r[2]] for r in read]

    def _paths(self) -> list:
        paths = []
        for folder in (self.folder, self.extra_folder):
            try:
                if folder is not None and folder.is_dir():
                    paths += sorted(p for p in folder.glob("*.py") if not p.name.startswith(("_", ".")))
            except OSError:  # the folder went away or cannot be listed: its files are not there
                continue
        return paths + [Path(f) for f in self.files]

    def reload(self) -> dict:
        with self._lock:
            policies, errors, seen = {}, [], set()
            for policy in self._load_all(self._paths()):
                try:
                    if isinstance(policy, PolicyFileError):
                        raise policy
                    if policy.name in policies:
                        raise PolicyFileError("name_taken", policy.file, None,
                                              f"NAME {policy.name!r} is already used by {policies[policy.name].file}.")
                except PolicyFileError as exc:
                    errors.append(exc.as_dict())
                    continue
                if policy.file not in seen:
                    seen.add(policy.file)
                    policies[policy.name] = policy
            self.prefill = _publish_prefill(policies, {}, self.publish)
            self.policies, self.errors = policies, errors
            self._sync_evaluate()
            return self.listing()

    def trust_folder(self, folder) -> dict:
        try:
            p = Path(folder).expanduser()
            found = p.is_dir()
            resolved = p.resolve() if found else None
        except (OSError, RuntimeError):  # a name too long, a symlink loop
            found = False
        if not found:
            raise UserError("not_found", f"{str(folder)[:300]}: no such folder.", "folder")
        self.extra_folder = resolved
        return self.reload()

    def trust_file(self, path) -> UserPolicy:
        """Load one file (the caller has the user's consent); it stays loaded across reloads."""
        policy = self._load(path)  # raises its PolicyFileError before anything changes
        with self._lock:
            other = self.policies.get(policy.name)
            if other is not None and other.file != policy.file:
                raise PolicyFileError("name_taken", policy.file, None,
                                      f"NAME {policy.name!r} is already used by {other.file}.")
            if policy.file not in self.files:
                self.files.append(policy.file)
            self.policies[policy.name] = policy
            self.errors = [e for e in self.errors if e["file"] != policy.file]
            self.prefill = _publish_prefill(self.policies, self.prefill, self.publish)
            self._sync_evaluate()
        return policy

    def _sync_evaluate(self) -> None:
        """Evaluate keeps its own list of policies: add ours, drop those no longer loaded. A rule
        that only scores keys as they enter keeps the same positions in every head, like the
        window and StreamingLLM; a rule that reads attention decides per layer and KV head."""
        from ..evaluate.deciders import register_policy, unregister_policy

        if not self.publish:
            return
        for name in self._published - set(self.policies):
            unregister_policy(name)
        for name, policy in self.policies.items():
            register_policy(name, policy.evaluate_maker(), per_head=policy.rescores)
        self._published = set(self.policies)
        self._warm_workers()

    def _warm_workers(self) -> None:
        """Each loaded rule gets a worker process compiling it now, so its first run does not wait
        (backend/usercode/pool.py); the workers of rules no longer loaded go."""
        pool.keep_only({pool.rule_key(p) for p in (*self.policies.values(), *self.prefill.values())})
        for policy in list(self.policies.values())[:pool.MAX_IDLE]:
            pool.warm(policy)

    def unpublish(self) -> None:
        """Take this registry's policies out of Evaluate (an Api that goes away; tests)."""
        from ..evaluate.deciders import unregister_policy

        with self._lock:
            for name in self._published:
                unregister_policy(name)
            self._published = set()
            pool.keep_only(set())

    def in_folder(self, path) -> bool:
        """True for a file directly in the policies folder (those load without asking)."""
        try:
            return Path(path).expanduser().resolve().parent == self.folder.expanduser().resolve()
        except OSError:
            return False

    def get(self, name: str) -> UserPolicy | None:
        return self.policies.get(name)

    def snapshot(self, prefill: bool = False) -> dict:
        """name → loaded file: the eviction rules, and with prefill=True the prefill files too (a sweep ships both)."""
        return {**self.policies, **(self.prefill if prefill else {})}

    def listing(self) -> dict:
        return {"policies": [p.listing() for p in self.policies.values()], "errors": list(self.errors),
                "prefill_methods": [p.listing() for p in self.prefill.values()],
                "folder": str(self.folder), "folder_exists": self.folder.is_dir(),
                "extra_folder": str(self.extra_folder) if self.extra_folder else None, "files": list(self.files)}


def _publish_prefill(policies: dict, before: dict, publish: bool) -> dict:
    """Moves the prefill files out of `policies` (they are no eviction rule), adds them to `before`
    and, for the app's registry, offers them as prefill methods (backend/compress/user.py)."""
    from ..compress import user

    prefill = {**before, **{name: p for name, p in policies.items() if getattr(p, "prefill", False)}}
    for name in prefill:
        policies.pop(name, None)
    if publish:
        user.publish(prefill)
    return prefill


_shipped: dict[tuple, UserPolicy] = {}  # (file, text hash) → loaded, per worker process
_shipped_lock = threading.Lock()


def load_shipped(entries) -> dict:
    """Worker side of a sweep: the rule files that came with a task (their text, from the driver,
    which the user trusted), compiled once per process and offered to Evaluate here too.
    Returns name → UserPolicy (or PrefillFile: a score file, offered to the prefill methods here)."""
    from ..compress import user as prefill_user
    from ..evaluate.deciders import register_policy

    out = {}
    with _shipped_lock:
        for entry in entries or []:
            key = (entry["file"], hashlib.sha256(entry["source"].encode()).hexdigest())
            if key not in _shipped:
                policy = load_source(entry["source"], entry["file"])
                if getattr(policy, "prefill", False):
                    prefill_user.add(policy)
                else:
                    register_policy(policy.name, policy.evaluate_maker(), per_head=policy.rescores)
                _shipped[key] = policy
            out[entry["name"]] = _shipped[key]
    return out
