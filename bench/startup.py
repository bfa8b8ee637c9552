"""Time from launching `python main.py` to the window being shown (Qt offscreen), over a few runs.

main.py prints "window shown after X s" (measured from the interpreter's first line of
main.py) on stderr; this also times the whole process start from outside.
Target (issue 2): the window within 3 s, with torch and transformers loaded only after it shows.
"""
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = int(os.environ.get("RUNS", "5"))


def one_run() -> tuple[float, float]:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "QTWEBENGINE_CHROMIUM_FLAGS": "--no-sandbox",
           "SINKVIS_EXIT_AFTER_SHOWN": "0.2"}
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "main.py"], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        match = re.search(r"window shown after ([\d.]+) s", line)
        if match:
            outside = time.perf_counter() - started
            proc.wait(timeout=60)
            return float(match.group(1)), outside
    proc.wait(timeout=60)
    raise RuntimeError("the window never showed")


if __name__ == "__main__":
    inside, outside = zip(*(one_run() for _ in range(RUNS)))
    print(f"runs: {RUNS}")
    print(f"window shown (inside main.py): median {statistics.median(inside):.2f} s, max {max(inside):.2f} s")
    print(f"window shown (from process launch): median {statistics.median(outside):.2f} s, max {max(outside):.2f} s")
