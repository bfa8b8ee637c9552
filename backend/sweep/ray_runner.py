"""Run a sweep's tasks on an existing Ray cluster (`--ray auto` or `--ray HOST:PORT`).

SinkVis never starts a scheduler: ray.init(address=...) only connects (no cluster →
a clear error). On each alive node, one actor per model (NodeAffinitySchedulingStrategy,
soft so a restarted actor may move if its node is gone) loads the model once; it takes
a GPU when its node has one. The driver keeps two tasks in flight per actor, collects
results with ray.wait as they finish and is the only writer of the results file.
When an actor's process or node dies, Ray restarts the actor and retries its tasks
(max_restarts / max_task_retries): the driver still writes each cell once, by key.
"""
import os
from pathlib import Path

from ..errors import UserError
from .driver import task_failed

ROOT = Path(__file__).resolve().parents[2]
IN_FLIGHT = 2  # per actor: one running, one queued, so an actor never waits for the driver
POLL_SECONDS = 0.25
RETRIES = 3
_connected: dict = {}  # the address this process is connected to


def _actor_class(ray):
    @ray.remote(max_restarts=RETRIES, max_task_retries=RETRIES)
    class SweepWorker:
        def __init__(self, model, device, precision):
            from backend.sweep.cells import init_worker
            from backend.workers import mark_contained

            mark_contained()  # user rules run in this actor, which Cancel kills (issue #25)
            init_worker([model], device, precision)

        def run(self, task, settings):
            from backend.errors import UserError as Refused
            from backend.sweep.cells import run_task
            from backend.workers import call_contained

            node = ray.get_runtime_context().get_node_id()
            try:  # on a thread: a rule stuck past its step limit ends the call with rule_timeout (rule_watch.py)
                return [dict(r, node=node) for r in call_contained(run_task, task, settings)]
            except Refused as exc:  # bad settings are not worth a retry: hand the message back as data
                return {"error": {"code": exc.code, "message": exc.message, "field": exc.field}}
            except Exception as exc:  # noqa: BLE001 - the task's own error (Ray retries dead actors, not these)
                import traceback

                traceback.print_exc()  # the actor's log keeps the traceback; the driver shows the one line
                return {"failed": f"{type(exc).__name__}: {str(exc)[:300]}"}

        def where(self):
            return {"node": ray.get_runtime_context().get_node_id(), "pid": os.getpid()}

    return SweepWorker


def connect(address: str):
    """Connect to a running cluster; never start one."""
    try:
        import ray
    except ImportError:
        raise UserError("no_ray", "Ray is not installed here (the single-file build leaves it out): run the sweep "
                        "locally, or from a source install (pip install -r requirements.txt).", "ray") from None
    if not isinstance(address, str) or not address.strip():
        raise UserError("bad_input", "ray must be 'auto' or a cluster address like 10.0.0.5:6379.", "ray")
    if ray.is_initialized():
        if _connected.get("address") == address.strip():
            return ray
        ray.shutdown()  # another cluster than last time
    try:
        # PYTHONPATH: the nodes import SinkVis from the same path (a shared checkout or image).
        ray.init(address=address.strip(), logging_level="ERROR", log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise UserError("no_cluster", f"No Ray cluster at {address!r} ({str(exc)[:160]}). Start one with "
                        "`ray start --head` (and `ray start --address ...` on the other machines), or run locally.",
                        "ray") from None
    _connected["address"] = address.strip()
    return ray


class RayRunner:
    def __init__(self, address: str = "auto"):
        self.address = address
        self.ray = connect(address)
        self.actors: list = []  # (model, node_id, handle)
        self.where = "Ray cluster"

    def _start_actors(self, spec) -> None:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        ray = self.ray
        nodes = [n for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) > 0]
        if not nodes:
            raise UserError("no_cluster", "The Ray cluster has no alive node with a CPU.", "ray")
        worker = _actor_class(ray)
        for model in spec.models:
            for node in nodes:
                gpus = 1 if node["Resources"].get("GPU", 0) >= 1 else 0
                handle = worker.options(
                    num_gpus=gpus, num_cpus=1 / len(spec.models),  # each node hosts every model's actor
                    scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=True),
                ).remote(model, spec.device, spec.precision)
                self.actors.append((model, node["NodeID"], handle))
        self.where = f"Ray cluster at {self.address}: {len(nodes)} nodes, {len(self.actors)} actors"

    def worker_pids(self) -> dict:
        """{node id: actor process id} (the tests kill one mid-sweep)."""
        ray = self.ray
        out = {}
        for _, _, handle in self.actors:
            w = ray.get(handle.where.remote())
            out.setdefault(w["node"], []).append(w["pid"])
        return out

    def run(self, tasks: list[dict], spec, should_stop):
        ray = self.ray
        self._start_actors(spec)
        settings = {"device": spec.device, "precision": spec.precision}
        queues = {m: [t for t in tasks if t["cells"][0]["model"] == m] for m in spec.models}
        busy: dict = {}  # object ref → (actor index, task)
        load = [0] * len(self.actors)

        def feed():
            for i, (model, _, handle) in enumerate(self.actors):
                while load[i] < IN_FLIGHT and queues[model]:
                    task = queues[model].pop(0)
                    busy[handle.run.remote(task, settings)] = (i, task)
                    load[i] += 1

        try:
            feed()
            while busy:
                if should_stop():
                    return
                ready, _ = ray.wait(list(busy), num_returns=1, timeout=POLL_SECONDS)
                for ref in ready:
                    i, task = busy.pop(ref)
                    load[i] -= 1
                    try:
                        rows = ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        raise UserError("ray_failed", f"A sweep task failed on the cluster after {RETRIES} retries "
                                        f"({_last_line(exc)}); rerun to resume.", "ray") from None
                    if isinstance(rows, dict) and "failed" in rows:
                        raise task_failed(task, rows["failed"])
                    if isinstance(rows, dict):
                        raise UserError(**rows["error"])
                    feed()
                    yield rows
        finally:
            self.close()

    def close(self):
        for _, _, handle in self.actors:
            try:
                self.ray.kill(handle)  # frees the models on the nodes; the cluster itself stays up
            except Exception:  # noqa: BLE001 - an actor that is already gone
                pass
        self.actors = []


def _last_line(exc) -> str:
    """A RayTaskError's text is the remote traceback; its last line names the actual error."""
    lines = [x for x in str(exc).splitlines() if x.strip()]
    return (lines[-1] if lines else type(exc).__name__)[:300]
