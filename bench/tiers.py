"""Benchmark: the tier simulator on a 1,000,000-token synthetic trace, 16-token blocks (62,500 blocks).

Settings are the Cache Profile defaults with the "constrained" preset, so all four
tiers fill and blocks move. Seconds are wall-clock after JIT warm-up (CPU seconds
beside them: on a shared machine wall time is noisy). The plain-Python reference
(tests/reference_tiers.py) runs the first --ref-steps steps of the same problem and
is scaled to the full length; the two are checked to agree on that slice. Those
first steps fit in HBM (nothing moves yet) and the reference's coldest-block search
scans a whole tier, so that ratio is a lower bound: the line before it times the
reference on a whole small constrained problem. The last line is the slice ratio.

    python bench/tiers.py [--length N] [--block-size B] [--ref-steps N]
"""
import argparse
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

from backend.profile import kv_bytes, service  # noqa: E402
from kernels import tiers  # noqa: E402
import reference_tiers as ref  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--length", type=int, default=1_000_000)
    ap.add_argument("--block-size", type=int, default=16)
    ap.add_argument("--ref-steps", type=int, default=20_000)
    args = ap.parse_args()
    req = service.parse({"length": args.length, "block_size": args.block_size, "preset": "constrained"},
                        *kv_bytes.for_loaded(None))
    n, pinned, tier_list, kwargs = service.prepare(req)
    cap = [t["capacity_blocks"] for t in tier_list]

    started = time.perf_counter()
    tiers.simulate(1000, args.block_size, cap, pinned[: -(-1000 // args.block_size)], **{**kwargs, "snap_steps": None})
    print(f"warm-up (JIT load or compile): {time.perf_counter() - started:.2f} s")

    runs = []
    for _ in range(3):
        t0, c0 = time.perf_counter(), time.process_time()
        out = tiers.simulate(n, args.block_size, cap, pinned, **kwargs)
        runs.append((time.perf_counter() - t0, time.process_time() - c0))
    wall, cpu = min(runs)
    print(f"{n:,} tokens, {len(pinned):,} blocks of {args.block_size}, capacities {cap} blocks")
    print(f"blocks per tier {out['blocks'].tolist()}, hits {out['hits'].tolist()}, "
          f"promotions {out['promotions']:,}, demotions {out['demotions']:,}")
    print(f"kernel: {wall:.3f} s wall (best of 3; cpu {cpu:.3f} s), {wall * 1e9 / n:.0f} ns/step "
          f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")

    steps = min(args.ref_steps, n)
    t0 = time.perf_counter()
    ref_kwargs = {k: v for k, v in kwargs.items() if k not in ("chunk_steps", "snap_steps")}
    expected = ref.simulate(n, args.block_size, cap, pinned, **ref_kwargs, steps=steps)
    ref_s = (time.perf_counter() - t0) * n / steps
    check = tiers.simulate(steps, args.block_size, cap, pinned[: -(-steps // args.block_size)],
                           **{**kwargs, "snap_steps": None})
    agree = all(np.array_equal(np.asarray(check[k]), np.asarray(expected[k])[: len(check[k])])
                for k in ("hits", "token_steps", "tier", "acc", "access", "heat")) and all(
        check[k] == expected[k] for k in ("promotions", "demotions", "moved_tokens"))
    print(f"reference: ~{ref_s:.0f} s scaled from {steps:,} steps, {'agrees' if agree else 'DISAGREES'} on them")
    # Those first steps fit in HBM, so nothing moves yet; a whole small constrained problem shows the steady state.
    small = service.parse({"length": steps, "block_size": args.block_size, "preset": "constrained"},
                          *kv_bytes.for_loaded(None))
    _, small_pinned, small_tiers, small_kwargs = service.prepare(small)
    small_cap = [t["capacity_blocks"] for t in small_tiers]
    t0 = time.perf_counter()
    ref.simulate(steps, args.block_size, small_cap, small_pinned,
                 **{k: v for k, v in small_kwargs.items() if k not in ("chunk_steps", "snap_steps")})
    steady = (time.perf_counter() - t0) / steps
    print(f"reference on a whole {steps:,}-token constrained problem (tiers full, blocks moving): "
          f"{steady * 1e6:.0f} µs/step, {steady * n / wall:.0f}x the kernel's 1M-token rate")
    print(f"ratio to reference: {ref_s / wall:.0f}x")


if __name__ == "__main__":
    main()
