"""`sliding_window_recompute`: StreamingLLM's "sliding window with re-computation" baseline.

This is how Evaluate worked before the real cache: at every step the model re-runs over
the kept *tokens* plus the new one with positions 0..k inside the window (forward.py),
so nothing cached is reused and the window's first token becomes a fresh sink. It is
kept as the named baseline: good perplexity, one forward over C + 1 tokens per step.
Its window is chosen by the sliding-window kernel on the mean attention (layers, heads).
"""
import numpy as np

from .forward import over_kept
from .policy_step import OnlinePolicy

NAME = "sliding_window_recompute"


class Recompute:
    def __init__(self, loaded, ids, n, cache_size, sinks, window, access_threshold, keep_trace=False):
        self.loaded, self.ids = loaded, ids
        self.online = OnlinePolicy("sliding_window", n, cache_size, sinks, window, access_threshold, keep_trace)
        self.kept = np.zeros(0, dtype=np.int64)
        self.evictions = 0

    def step(self, t: int, full):
        """Log-probs for token t + 1. While nothing was evicted this is the Full Cache step itself."""
        if len(self.kept) == t and t < full.attention_until:
            lp, row = full.logprobs(t), full.attention(t).mean(axis=0)
        else:
            lp, seen = over_kept(self.loaded, self.ids, self.kept, t)
            row = np.zeros(t + 1)
            row[self.kept], row[t] = seen[:-1], seen[-1]
        new_kept = self.online.step(t, row)
        self.evictions += len(self.kept) + 1 - len(new_kept)
        self.kept = new_kept
        return lp
