"""Print the architecture matrix (issue 30): sixteen tiny models × every view, through the Api.

    .venv/bin/python tools/architecture_matrix.py                 # all sixteen, markdown table on stdout
    .venv/bin/python tools/architecture_matrix.py llama gpt_oss   # just these
    .venv/bin/python tools/architecture_matrix.py --known         # also the KNOWN_FAILURES dict for today's cells

Each cell is ✓ or the first line of what went wrong (error code: message, or the deviation from a plain
transformers forward); by default each distinct failure is numbered (✗n) and spelled out under the table. The models and checks live in tests/architectures.py; tests/test_architectures.py is
the same matrix as a parametrised pytest with today's failures marked xfail(strict=True).
"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("SINKVIS_CACHE_DIR", tempfile.mkdtemp(prefix="sinkvis-cache-"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("architectures", nargs="*", help="names from tests/architectures.py (default: all)")
    parser.add_argument("--known", action="store_true", help="also print the failing cells as a KNOWN_FAILURES dict")
    parser.add_argument("--full", action="store_true", help="every failure's text in its cell (default: ✗n + legend)")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    import architectures as A
    from backend.api import Api

    names = args.architectures or list(A.ARCHITECTURES)
    unknown = [n for n in names if n not in A.ARCHITECTURES]
    if unknown:
        parser.error(f"unknown architecture(s) {unknown}; choose from {', '.join(A.ARCHITECTURES)}")
    api, results = Api(), {}
    try:
        with tempfile.TemporaryDirectory(prefix="sinkvis-arch-") as tmp:
            for name in names:
                started = time.perf_counter()
                results[name] = A.run(api, name, A.save(name, Path(tmp) / name))
                print(f"{name}: {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    finally:
        api._state.jobs.cancel_all()
    print(A.markdown(results, full=args.full))
    if args.known:
        print("\nKNOWN_FAILURES = {")
        for name, cells in results.items():
            for feature, cell in cells.items():
                if not cell.startswith(("✓", "n/a: ")):
                    print(f"    ({name!r}, {feature!r}): {cell!r},")
        print("}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
