"""How many CPU threads torch gets: one for small models and on machines with two cores or
fewer, torch's default for the rest; a count the user set (OMP_NUM_THREADS) always wins.

A forward of a model this small takes milliseconds; splitting it over OpenMP threads
costs more than it saves, and on a busy machine spinning threads make it far worse
(demo model, 13-token forward on a loaded 2-core machine: 0.59 s with 2 threads,
0.04 s with 1; a stream step 5.4 ms with 1 thread).

On two cores the app's own work (the window, the eviction kernels, another job) and any
other process leave no core free, and a thread that waits for its twin spins on the core
the twin needs. SmolLM2-135M on a 2-core machine (issue #32), with ONE other single-threaded
process busy beside it: a plain decode step 58 ms on 1 thread, 1,737 ms on 2; a batched decode
step of five with attentions 112 ms against 4,744 ms; a 256-token forward 0.76 s against 10.4 s.
At load average 4.5–5.3: a plain step 88 ms against 1,638 ms, Evaluate's batched step 0.19 s
against 5.3 s. (Letting OpenMP threads sleep, OMP_WAIT_POLICY=PASSIVE, still gave 0.35 s on 2.)
"""
import os

SMALL_MODEL_PARAMETERS = 30_000_000
FEW_CORES = 2
_default_threads = None


def threads_for(parameters: int, cores: int, default: int, user_set: bool) -> int:
    """The rule: the user's count (torch's default then holds it), else 1 for a small model or a machine with
    FEW_CORES or fewer, else torch's default."""
    if user_set:
        return default
    return 1 if parameters < SMALL_MODEL_PARAMETERS or cores <= FEW_CORES else default


def cores() -> int:
    """The cores this process may run on (a container or taskset may allow fewer than the machine has)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def set_threads_for(parameters: int) -> int:
    import torch

    global _default_threads
    if _default_threads is None:
        _default_threads = torch.get_num_threads()  # before any change: OMP_NUM_THREADS's count, or the cores'
    threads = threads_for(parameters, cores(), _default_threads, bool(os.environ.get("OMP_NUM_THREADS")))
    torch.set_num_threads(threads)
    return threads
