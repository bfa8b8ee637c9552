"""How long a run will take, measured on this machine before it starts.

Three short forwards of the loaded model (one batched cached decode step over C entries,
one 64-token chunk of the Full pass and, if asked, one re-computation over C + 1 tokens)
scaled by the number of steps each kind runs. Typically within a factor of 1.5 of the run.
"""
import time

from .full import CHUNK


def timed(fn, repeats=2) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def estimate(loaded, steps: int, cache_size: int, batch: int, recompute: bool) -> dict:
    import torch
    from transformers import DynamicCache

    model, spec, dev = loaded.model, loaded.spec, loaded.device
    dtype = next(model.parameters()).dtype
    shape = (max(1, batch), spec["kv_heads"], cache_size, spec["head_dim"])

    def decode():
        cache = DynamicCache()
        for layer in range(spec["layers"]):
            cache.update(torch.zeros(shape, dtype=dtype, device=dev), torch.zeros(shape, dtype=dtype, device=dev), layer)
        model(input_ids=torch.zeros((shape[0], 1), dtype=torch.long, device=dev),
              position_ids=torch.full((shape[0], 1), cache_size, device=dev), past_key_values=cache,
              use_cache=True, output_attentions=True)

    def chunk(k):
        return lambda: model(input_ids=torch.zeros((1, k), dtype=torch.long, device=dev), use_cache=False,
                             output_attentions=True)

    with torch.inference_mode():
        step = timed(decode) if batch else 0.0
        full = timed(chunk(min(CHUNK, cache_size + 1)), 1)
        redo = timed(chunk(cache_size + 1), 1) if recompute else 0.0
    evicting_steps = max(0, steps - cache_size - 1)
    seconds = evicting_steps * (step + redo) + -(-steps // CHUNK) * full * 2  # ×2: the chunks grow to n keys
    return {"seconds": round(seconds, 1), "decode_step_seconds": round(step, 4), "steps": steps,
            "evicting_steps": evicting_steps,
            # for time_left.py: a step once the cache is full (the batched decode, the re-computation); a Full chunk
            "evicting_step_seconds": step + redo, "chunk_seconds": full}
