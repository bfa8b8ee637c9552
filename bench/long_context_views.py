"""Long-context views (issue 32): the Quick Attention Test, its zoom and the Live Stream at SmolLM2's context.

Each row runs in its own subprocess (so one row's memory never shows in another's), on the same text
(the repo's docs, tokenised and cut to --tokens), one after the other in one run:

  plain        one forward of the loaded model over the tokens with the fast attention (transformers' sdpa,
               through the seam, with sdpa's masks: None where causal), no attentions, last logits only: the baseline
  quick        Api.attention at the default view (last layer, mean over heads): the forward, the view's rows
               block by block, the overview pooled to 256 cells (max and mean), sinks
  quick-all    the same for the mean over all layers and heads (every layer's queries and keys kept)
  zoom         after `quick`: Api.attention_zoom of a 256 × 256 region at single tokens (median of 5
               regions: at the diagonal's end, near the start, and in the middle)
  stream       StreamSession over --stream-tokens tokens of the same text: state bytes (history_bytes) at the
               end against the stated bound, and the growth of peak RSS over the stream
  trace        Simulate's model trace (last layer, mean over heads): the forward, then the compact trace built
               from the view's rows block by block (kernels/eviction/sparse.py); its bytes against the dense n²
               int64, and (printed apart, not in the row's seconds) Simulate's time on it for every policy
  profile      the Cache Profile on the model trace (last layer's mean over heads, LRU offload, blocks of 16): the
               forward, each row's mass per block pooled from the view's rows, the tier simulation

Memory is peak RSS above the RSS right after the model loaded (VmHWM reset through /proc/self/clear_refs,
Linux). Times are wall seconds and CPU seconds of the process (steadier on a shared machine: with one thread
it is the work done). Ratios are row / plain, measured one after the other in this run. The zoom row's
seconds include its own Quick Attention; its zoom latency is printed apart.

    python bench/long_context_views.py [--tokens 8000] [--threads 1] [--stream-tokens 8192] [--rows plain,quick,zoom,quick-all,stream,trace,profile]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(field)


def reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # the peak RSS (VmHWM) restarts from the current RSS


def prose_ids(tokenizer, n: int) -> list[int]:
    text = "\n\n".join(p.read_text() for p in sorted((ROOT / "docs").glob("*.md")))
    ids = tokenizer(text, add_special_tokens=True, verbose=False)["input_ids"]
    while len(ids) < n:
        ids = ids + ids[1:]
    return ids[:n]


def child(args) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    from backend.api import Api
    from backend.models.load import load_model

    api = Api()
    loaded = load_model("smollm2", device="cpu", precision="fp32")
    api._state.model = loaded
    ids = prose_ids(loaded.tokenizer, args.tokens)
    text = loaded.tokenizer.decode(ids[1:])  # encode() adds the BOS again
    reset_peak()
    base = rss_kib("VmRSS")
    out = {"row": args.child}
    started, cpu = time.perf_counter(), time.process_time()
    if args.child == "plain":
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        from backend.attention.seam import tapped

        def fast(call):
            return sdpa_attention_forward(call.module, call.query, call.key, call.value, call.mask, **call.kwargs)

        # sdpa's masks (None = causal), as transformers' own sdpa forward passes them: no n × n float mask
        with torch.inference_mode(), tapped(fast, masks="sdpa"):
            loaded.model(input_ids=torch.tensor([ids]), use_cache=False, logits_to_keep=1)
        out["tokens"] = len(ids)
    elif args.child in ("quick", "quick-all", "zoom"):
        params = {"text": text} if args.child != "quick-all" else {"text": text, "aggregate": "all_layers"}
        res = api.attention(params)
        assert res["ok"], res
        out["tokens"], out["sinks"] = res["n"], [s["position"] for s in res["sinks"]][:8]
        if args.child == "zoom":
            n, seconds = res["n"], []
            for q0, k0 in ((n - 256, n - 256), (n - 256, 0), (n // 2, n // 4), (n // 2, n // 2 - 256), (300, 0)):
                z = api.attention_zoom({"q0": q0, "q1": q0 + 256, "k0": k0, "k1": k0 + 256})
                assert z["ok"] and len(z["max"]) == 256 and len(z["max"][0]) == 256, z
                seconds.append(z["seconds"])
            out["zoom_seconds"] = statistics.median(seconds)
    elif args.child == "trace":
        from backend.errors import UserError
        from backend.eviction import parse, simulate, traces

        p = parse({"trace": "model", "text": text, "policy": "all"})
        trace, info = traces.from_model(loaded, p)
        out.update(tokens=trace.n, trace_bytes=int(trace.weights.nbytes + trace.fixed.nbytes),
                   approximation=info.get("approximation"))
        sim_started, sim_cpu = time.perf_counter(), time.process_time()
        try:
            simulate(p, trace)
        except UserError as exc:  # the oracle's own limit (MAX_ORACLE_ACCESSES): the other policies still run
            out["oracle_refused"] = exc.message
            p.policies = [x for x in p.policies if x != "oracle"]
            sim_started, sim_cpu = time.perf_counter(), time.process_time()
            simulate(p, trace)
        out["policies"] = p.policies
        out["simulate_seconds"] = time.perf_counter() - sim_started
        started += out["simulate_seconds"]  # the row's seconds: the trace alone, as the other rows' views
        cpu += time.process_time() - sim_cpu
    elif args.child == "profile":
        job = api.profile({"trace": "model", "text": text, "aggregate": "layer", "block_size": 16, "policy": "lru"})
        assert job["ok"], job
        while (status := api.job_status({"job_id": job["job_id"]}))["state"] == "running":
            time.sleep(0.05)
        assert status["state"] == "done", status
        res = status["result"]
        out.update(tokens=res["summary"]["n_tokens"], mass_bytes=8 * res["summary"]["n_tokens"] * res["summary"]["n_blocks"])
    elif args.child == "stream":
        from backend.attention.extract import token_labels
        from backend.attention.stream import StreamSession

        ids = prose_ids(loaded.tokenizer, args.stream_tokens)
        session = StreamSession(loaded, ids, lambda i: token_labels(loaded.tokenizer, i))
        checkpoints = {}
        while session.step() is not None:
            if session.position in (256, 1024, 4096, len(ids)):
                checkpoints[session.position] = {"state_bytes": session.history_bytes(),
                                                 "peak_mib": (rss_kib("VmHWM") - base) / 1024}
        out.update(tokens=session.position, bound_bytes=session.state_bound(), checkpoints=checkpoints,
                   message=session.message)
    out["seconds"], out["cpu_seconds"] = time.perf_counter() - started, time.process_time() - cpu
    out["peak_above_model_mib"] = (rss_kib("VmHWM") - base) / 1024
    out["model_rss_mib"] = base / 1024
    return out


def run(row: str, args) -> dict:
    cmd = [sys.executable, __file__, "--child", row, "--tokens", str(args.tokens), "--threads", str(args.threads),
           "--stream-tokens", str(args.stream_tokens)]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": str(args.threads)})
    if done.returncode:
        raise SystemExit(f"{row} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=8000)
    parser.add_argument("--stream-tokens", type=int, default=8192)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rows", default="plain,quick,zoom,quick-all,stream",
                        help="which rows, comma-separated (plain runs whenever a Quick Attention row does)")
    parser.add_argument("--child")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    asked = [r for r in args.rows.split(",") if r and r != "plain"]
    rows = (["plain"] if any(r != "stream" for r in asked) else []) + asked
    print(f"SmolLM2-135M fp32, CPU, {args.threads} thread(s), {args.tokens:,} tokens (stream: {args.stream_tokens:,})")
    results = {row: run(row, args) for row in rows}
    plain = results.get("plain")
    if plain:
        table(results, plain)
    if "trace" in results:
        r = results["trace"]
        a = r["approximation"] or {}
        print(f"trace: {r['tokens']:,} tokens, {r['trace_bytes'] / 2**20:.1f} MiB ({'compact' if a else 'dense'}; "
              f"dense int64 would be {8 * r['tokens'] ** 2 / 2**20:.0f} MiB); folded mass per row mean "
              f"{a.get('folded_mass_mean', 0):.4f}, max {a.get('folded_mass_max', 0):.4f}; largest folded weight "
              f"{a.get('largest_folded_weight', 0):.3g}")
        print(f"Simulate on it, {len(r['policies'])} policies ({', '.join(r['policies'])}): {r['simulate_seconds']:.2f} s"
              + (f"; the oracle refused: {r['oracle_refused']}" if "oracle_refused" in r else ""))
    if "profile" in results:
        r = results["profile"]
        print(f"profile: {r['tokens']:,} tokens, the pooled trace {r['mass_bytes'] / 2**20:.1f} MiB (float64 per row and "
              f"block of 16; the n × n float32 matrix it replaces: {4 * r['tokens'] ** 2 / 2**20:.0f} MiB)")
    if "stream" in results:
        s = results["stream"]
        print(f"stream: {s['tokens']:,} tokens in {s['seconds']:.0f} s ({s['message']}); state bound "
              f"{s['bound_bytes'] / 2**20:.1f} MiB")
        for pos, c in sorted(s["checkpoints"].items(), key=lambda kv: int(kv[0])):
            print(f"  at {int(pos):>5,} tokens: state {c['state_bytes'] / 2**20:7.1f} MiB, peak RSS above model "
                  f"{c['peak_mib']:7.0f} MiB")


def table(results: dict, plain: dict) -> None:
    print(f"{'row':<10} {'seconds':>9} {'CPU s':>8} {'peak MiB above model':>21} {'time vs plain':>14} "
          f"{'CPU vs plain':>13} {'memory vs plain':>16}")
    for row, r in results.items():
        if row == "stream":
            continue
        print(f"{row:<10} {r['seconds']:>9.2f} {r['cpu_seconds']:>8.1f} {r['peak_above_model_mib']:>21.0f} "
              f"{r['seconds'] / plain['seconds']:>13.2f}x {r['cpu_seconds'] / plain['cpu_seconds']:>12.2f}x "
              f"{r['peak_above_model_mib'] / max(1e-9, plain['peak_above_model_mib']):>15.2f}x")
    print(f"model RSS after load: {plain['model_rss_mib']:.0f} MiB")
    if "zoom" in results:
        print(f"zoom 256×256 single tokens: {results['zoom']['zoom_seconds']:.3f} s (median of 5, after its own Quick Attention)")


if __name__ == "__main__":
    main()
