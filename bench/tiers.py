"""Benchmark: the tier simulator on a 1,000,000-token synthetic trace, 16-token blocks (62,500 blocks).

Settings are the Cache Profile defaults with the "Constrained" preset (HBM 20%, L2 5%,
RAM 25% of the sequence's KV, the rest on disk), so every tier fills and blocks move.
Side by side in one run: "before" is the old placement rule (heat, no hysteresis:
margin 0, patience 0 — the same rule, move for move, as the kernel this replaced) and
"after" is each placement policy at its defaults. For each: bytes moved over the
sequence's KV bytes (target for LRU offload: ≤ 2×), promotions, demotions, mean KV
read time per step, and seconds (wall, best of 2 after JIT warm-up; CPU beside it —
on a shared machine wall time is noisy; target ≤ 2 s). Last, the plain-Python
reference (tests/reference_tiers.py) runs the first --ref-steps steps of LRU offload
and must agree with the kernel on them.

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

RUNS = [("before: heat, no hysteresis", "heat", {"margin": 0.0, "patience": 0}),
        ("after: LRU offload", "lru", {}),
        ("after: top-k fetch", "topk", {}),
        ("after: heat + hysteresis", "heat", {})]


def prepared(length, block_size, policy, extra):
    req = service.parse({"length": length, "block_size": block_size, "preset": "constrained", "policy": policy,
                         **extra}, *kv_bytes.for_loaded(None))
    n, pinned, tier_list, kwargs = service.prepare(req)
    return req, n, pinned, tier_list, kwargs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--length", type=int, default=1_000_000)
    ap.add_argument("--block-size", type=int, default=16)
    ap.add_argument("--ref-steps", type=int, default=20_000)
    args = ap.parse_args()
    print(f"{args.length:,} tokens, blocks of {args.block_size}, Constrained preset, synthetic trace "
          f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    print(f"{'':<30} {'moved / KV':>10} {'promotions':>11} {'demotions':>10} {'read/step':>10} {'wall s':>7} {'cpu s':>6}")
    rows = {}
    for label, policy, extra in RUNS:
        req, n, pinned, tier_list, kwargs = prepared(args.length, args.block_size, policy, extra)
        cap = [t["capacity_blocks"] for t in tier_list]
        nb = -(-1000 // args.block_size)
        tiers.simulate(1000, args.block_size, cap, pinned[:nb], **{**kwargs, "snap_steps": None})  # JIT load
        runs = []
        for _ in range(2):
            t0, c0 = time.perf_counter(), time.process_time()
            out = tiers.simulate(n, args.block_size, cap, pinned, **kwargs)
            runs.append((time.perf_counter() - t0, time.process_time() - c0))
        wall, cpu = min(runs)
        bw = np.array([t["bandwidth_bps"] for t in tier_list])
        read = float(service.read_seconds(out["read_tokens"], req.bytes_per_token, bw)) / n
        rows[label] = out["moved_tokens"] / n
        print(f"{label:<30} {out['moved_tokens'] / n:>9.2f}x {out['promotions']:>11,} {out['demotions']:>10,} "
              f"{read * 1e3:>8.1f}ms {wall:>7.2f} {cpu:>6.2f}")
    before, after = rows[RUNS[0][0]], rows[RUNS[1][0]]
    print(f"bytes moved, LRU offload vs before: {after:.2f}x vs {before:.2f}x the KV bytes "
          f"({before / after:.0f}x less; target ≤ 2x: {'met' if after <= 2 else 'MISSED'})")

    steps = min(args.ref_steps, args.length)
    req, n, pinned, tier_list, kwargs = prepared(args.length, args.block_size, "lru", {})
    cap = [t["capacity_blocks"] for t in tier_list]
    small = {k: v for k, v in kwargs.items() if k not in ("chunk_steps", "snap_steps")}
    t0 = time.perf_counter()
    expected = ref.simulate(n, args.block_size, cap, pinned, **small, steps=steps)
    ref_s = (time.perf_counter() - t0) / steps
    check = tiers.simulate(steps, args.block_size, cap, pinned[: -(-steps // args.block_size)], **small)
    agree = all(np.array_equal(np.asarray(check[k]), np.asarray(expected[k])[: len(check[k])])
                for k in ("hits", "read_tokens", "tier", "acc", "access")) and all(
        check[k] == expected[k] for k in ("promotions", "demotions", "moved_tokens"))
    print(f"reference (LRU offload, first {steps:,} steps): {ref_s * 1e6:.0f} µs/step, "
          f"{'agrees' if agree else 'DISAGREES'} with the kernel on them")


if __name__ == "__main__":
    main()
