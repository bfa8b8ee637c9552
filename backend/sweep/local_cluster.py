"""A small Ray cluster on 127.0.0.1 (a head and more nodes, one CPU each) for the tests and
bench/sweep.py: `ray start` as any user would run it, each node in a process group of its
own so it is stopped by id at the end (never `ray stop`, which stops every Ray on the machine).
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_node(args, env, cpus: int) -> int:
    ray = str(Path(sys.executable).with_name("ray"))
    flags = ["--num-cpus", str(cpus), "--node-ip-address", "127.0.0.1", "--object-store-memory", str(80 * 2**20),
             "--disable-usage-stats"]
    proc = subprocess.Popen([ray, "start", *args, *flags], env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out, _ = proc.communicate(timeout=180)
    if proc.returncode != 0:
        raise RuntimeError(f"ray start failed:\n{out[-2000:]}")
    return proc.pid  # the session's process group: its daemons (gcs, raylet, workers) stay in it


@contextmanager
def local_cluster(nodes: int = 2, cpus: int = 1):
    """Yields the head's address (HOST:PORT); stops every node and removes its temp dir at the end."""
    temp = tempfile.mkdtemp(prefix="svray-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)
    port = _free_port()
    address = f"127.0.0.1:{port}"
    groups = []
    try:
        groups.append(_start_node(["--head", "--port", str(port), "--include-dashboard=false", "--temp-dir", temp],
                                  env, cpus))
        for _ in range(nodes - 1):
            groups.append(_start_node(["--address", address], env, cpus))
        yield address
    finally:
        try:
            import ray

            if ray.is_initialized():
                ray.shutdown()
        except ImportError:
            pass
        for group in groups:
            try:
                os.killpg(group, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(temp, ignore_errors=True)
