"""Size and start-up of the single-file executable (dist/sinkvis, built by `make dist`).

    .venv/bin/python bench/dist.py [--binary dist/sinkvis] [--runs 3] [--no-self-test] [--source]

Prints:
- the file's size;
- time to a visible window, for a cold start (the first, with an empty cache: the launcher
  unpacks the app into it, Numba compiles the kernels) and warm starts (the next ones): "inside"
  is what the app reports ("window shown after X s", measured from the app's Python start, so
  after any unpacking), "outside" is from launching the executable to that line appearing, and
  "exit" is the whole command (the window closes 0.5 s after showing), "cpu" its user + system
  CPU seconds (on a busy machine the wall times grow, this does not);
- the unpacked app folder the first start left under the cache (launcher/install.py);
- the --self-test's wall time, cold (empty Numba cache: the kernels compile) and warm.

The window runs with QT_QPA_PLATFORM=offscreen unless --display is given. With --display (an X
server: DISPLAY set, e.g. under `xvfb-run`) a "splash" column adds when PyInstaller's splash
(a Tk window) was first mapped on screen, polled every 20 ms with xwininfo until it shows
(those xwininfo runs count in that start's "cpu"; `python main.py` has no splash: n/a). --source measures
`python main.py` the same way, for comparison.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHOWN = re.compile(r"window shown after ([0-9.]+) s")


def _env(cache_home: str, display: bool) -> dict:
    env = dict(os.environ, SINKVIS_EXIT_AFTER_SHOWN="0.5", XDG_CACHE_HOME=cache_home)
    env.setdefault("QTWEBENGINE_CHROMIUM_FLAGS", "--no-sandbox")
    if not display:
        env["QT_QPA_PLATFORM"] = "offscreen"
    return env


def _cpu():
    """CPU seconds (user + system) of the finished child processes: what a start costs, whatever the load."""
    try:
        import resource  # POSIX
    except ImportError:
        return None
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _mapped_splash(env: dict) -> bool:
    """Whether a viewable window of class Tk (PyInstaller's splash) is on the X display now."""
    try:
        tree = subprocess.run(["xwininfo", "-root", "-children"], env=env, capture_output=True, text=True,
                              timeout=2).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    for wid in re.findall(r"^\s+(0x[0-9a-f]+) .*\(\"tk\" \"Tk\"\)", tree, re.M):
        info = subprocess.run(["xwininfo", "-id", wid], env=env, capture_output=True, text=True).stdout
        if "IsViewable" in info:
            return True
    return False


def _watch_splash(env: dict, started: float, proc, found: list) -> None:
    while proc.poll() is None and not found:
        if _mapped_splash(env):
            found.append(time.perf_counter() - started)
            return
        time.sleep(0.02)


def window_start(cmd: list, env: dict, timeout: float = 120.0, splash: bool = False) -> dict:
    cpu = _cpu()
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    seen: list = []
    watcher = threading.Thread(target=_watch_splash, args=(env, started, proc, seen), daemon=True) if splash else None
    if watcher is not None:
        watcher.start()
    inside = outside = None
    deadline = started + timeout
    for line in proc.stderr:
        match = SHOWN.search(line)
        if match and inside is None:
            outside = time.perf_counter() - started
            inside = float(match.group(1))
        if time.perf_counter() > deadline:
            proc.kill()
            break
    proc.wait(timeout=timeout)
    if watcher is not None:
        watcher.join()
    return {"inside": inside, "outside": outside, "exit": time.perf_counter() - started, "rc": proc.returncode,
            "cpu": None if cpu is None else _cpu() - cpu, "splash": seen[0] if seen else None}


def self_test(cmd: list, env: dict) -> dict:
    started = time.perf_counter()
    proc = subprocess.run(cmd + ["--self-test"], env=env, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - started
    try:
        summary = json.loads(proc.stdout)
    except json.JSONDecodeError:
        summary = {"ok": False, "error": proc.stderr[-2000:]}
    return {"wall": wall, "ok": summary.get("ok"), "inner": summary.get("seconds"), "rc": proc.returncode,
            "error": summary.get("error")}


def _fmt(value) -> str:
    return "   n/a" if value is None else f"{value:6.2f}"


def measure(label: str, cmd: list, runs: int, display: bool, with_self_test: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="sinkvis-bench-") as cache_home:
        env = _env(cache_home, display)
        print(f"\n{label}: {' '.join(cmd)}")
        print("  window (s)         inside outside    exit     cpu" + ("  splash" if display else ""))
        starts = [window_start(cmd, env, splash=display) for _ in range(runs)]
        for i, s in enumerate(starts):
            tag = "cold" if i == 0 else f"warm {i}"
            warn = "" if s["rc"] == 0 else f"   (exit code {s['rc']})"
            shown = f"  {_fmt(s['splash'])}" if display else ""
            print(f"    {tag:<16} {_fmt(s['inside'])} {_fmt(s['outside'])}  {_fmt(s['exit'])}  {_fmt(s['cpu'])}"
                  f"{shown}{warn}")
        unpacked = [p for p in Path(cache_home, "sinkvis", "app").glob("*") if p.is_dir()]
        for folder in unpacked:
            files = [f for f in folder.rglob("*") if f.is_file() and not f.is_symlink()]
            print(f"    unpacked once into <cache>/sinkvis/app/{folder.name}: "
                  f"{sum(f.stat().st_size for f in files) / 1e6:.1f} MB in {len(files)} files")
        warm = [s for s in starts[1:] if s["outside"] is not None]
        if warm:
            print(f"    warm median      {_fmt(statistics.median(s['inside'] for s in warm))} "
                  f"{_fmt(statistics.median(s['outside'] for s in warm))}  "
                  f"{_fmt(statistics.median(s['exit'] for s in warm))}")
        if with_self_test:
            print("  --self-test (s)      wall   inner  ok")
            for tag in ("cold", "warm"):
                r = self_test(cmd, env)
                print(f"    {tag:<16} {_fmt(r['wall'])}  {_fmt(r['inner'])}  {r['ok']}"
                      + (f"  rc={r['rc']} {r['error']}" if not r["ok"] else ""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", default=str(ROOT / "dist" / "sinkvis"))
    parser.add_argument("--runs", type=int, default=3, help="window starts (the first is the cold one)")
    parser.add_argument("--no-self-test", action="store_true")
    parser.add_argument("--display", action="store_true", help="use the real display instead of offscreen")
    parser.add_argument("--source", action="store_true", help="also measure `python main.py`")
    args = parser.parse_args()

    binary = Path(args.binary)
    if not binary.exists():
        print(f"{binary} not found: run `make dist` first", file=sys.stderr)
        return 2
    size = binary.stat().st_size
    print(f"{binary}: {size / 1e6:.1f} MB ({size / 2**20:.1f} MiB)")
    measure("single-file executable", [str(binary.resolve())], args.runs, args.display, not args.no_self_test)
    if args.source:
        measure("from source", [sys.executable, str(ROOT / "main.py")], args.runs, args.display,
                not args.no_self_test)
    return 0


if __name__ == "__main__":
    sys.exit(main())
