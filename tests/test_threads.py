"""torch's thread count for a loaded model (backend/models/threads.py): one thread for a small model or on a
machine with two cores or fewer, torch's default otherwise, and the user's OMP_NUM_THREADS always."""
import os
import subprocess
import sys

from helpers import ROOT

from backend.models.threads import SMALL_MODEL_PARAMETERS, threads_for

SMOLLM2 = 134_515_008  # parameters


def test_one_thread_for_a_small_model_or_few_cores_else_the_default():
    assert threads_for(SMALL_MODEL_PARAMETERS - 1, cores=16, default=16, user_set=False) == 1
    assert threads_for(SMOLLM2, cores=2, default=2, user_set=False) == 1
    assert threads_for(SMOLLM2, cores=1, default=1, user_set=False) == 1
    assert threads_for(SMOLLM2, cores=3, default=3, user_set=False) == 3
    assert threads_for(SMOLLM2, cores=16, default=8, user_set=False) == 8


def test_the_users_count_wins():
    assert threads_for(SMOLLM2, cores=2, default=2, user_set=True) == 2
    assert threads_for(SMALL_MODEL_PARAMETERS - 1, cores=16, default=4, user_set=True) == 4


def _threads_after_load(env_threads: str | None) -> tuple[int, int, int]:
    """(cores, torch's count before, torch's count after set_threads_for(SmolLM2's size)) in a fresh interpreter
    started with OMP_NUM_THREADS=env_threads (None: unset)."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    if env_threads is not None:
        env["OMP_NUM_THREADS"] = env_threads
    code = ("import torch; from backend.models.threads import cores, set_threads_for; "
            f"before = torch.get_num_threads(); set_threads_for({SMOLLM2}); "
            "print(cores(), before, torch.get_num_threads())")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return tuple(int(x) for x in out.stdout.split())


def test_set_threads_for_sets_torchs_count_and_omp_num_threads_wins():
    cores, before, after = _threads_after_load(None)
    assert after == (1 if cores <= 2 else before)
    # OMP_NUM_THREADS=2 (torch caps it at the cores): kept, where the rule alone gives 2 cores 1 thread
    assert _threads_after_load("2") == (cores, min(2, cores), min(2, cores))
