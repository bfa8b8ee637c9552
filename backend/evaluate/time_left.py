"""Time left in an Evaluate run, from the steps that remain at what each kind of step costs.

A step is one position for every policy. Three costs make it up, timed apart:
- a prefix step (t ≤ C): every cache is still Full Cache's, so only the decision makers run;
- an evicting step (t > C): a batched decode of every evicting policy plus the re-computation
  and Quest passes, often many times a prefix step;
- a chunk: every 64th step (t % 64 == 0) also runs Full Cache's forward over the next 64 tokens.
Extrapolating the mean step from the start of a run promised a fraction of the real time (issue 33:
317 s, then 825 s), so each kind is counted in the steps that remain at its own mean. Step 0 is a
chunk step and also pays one-off costs (the kernels' compilation), so it sets no mean; nor does the
first evicting step. Until a later evicting step or chunk has run, their costs are the measured
probe of estimate.py, which times the model's decode alone and so runs low where the per-head
decisions cost much (SmolLM2 on a busy 2-core machine: ~4×); the run's own steps replace it.
"""
import numpy as np

from .full import CHUNK


class TimeLeft:
    def __init__(self, steps: int, cache_size: int, evicting_step_guess: float | None = None,
                 chunk_guess: float | None = None):
        self.steps = steps
        self.split = min(steps, cache_size + 1)  # steps 0..C are the shared prefix
        self.guess = {"evicting": evicting_step_guess, "chunk": chunk_guess}
        self.seconds = np.zeros(steps)  # each step's measured seconds (every policy together)
        self.done = 0

    def step_done(self, t: int, seconds: float) -> None:
        self.seconds[t] = seconds
        self.done = t + 1

    def _mean(self, a: int, b: int) -> float | None:
        """Mean seconds of the plain steps done in a..b−1: not a chunk step, not the first evicting step (it
        builds the policies' caches and first runs the decode path: one-off costs, as step 0's)."""
        t = np.arange(a, min(b, self.done))
        plain = self.seconds[t[(t % CHUNK != 0) & (t != self.split)]]
        return float(plain.mean()) if len(plain) else None

    def left(self) -> float | None:
        """Seconds for the steps that remain; None while a kind of step still to come has no cost yet."""
        per_step = {"prefix": self._mean(0, self.split), "evicting": self._mean(self.split, self.steps)}
        if per_step["evicting"] is None:
            per_step["evicting"] = self.guess["evicting"]
        chunk = self.guess["chunk"]
        later = [t for t in range(CHUNK, self.done, CHUNK)]  # chunk steps after step 0 (no one-off costs)
        if later:
            chunk = float(np.mean([self.seconds[t] - (per_step["prefix" if t < self.split else "evicting"] or 0.0)
                                   for t in later]))
        remaining = np.arange(self.done, self.steps)
        counts = {"prefix": int((remaining < self.split).sum()), "evicting": int((remaining >= self.split).sum()),
                  "chunk": int((remaining % CHUNK == 0).sum())}
        costs = {**per_step, "chunk": chunk}
        if any(counts[k] and costs[k] is None for k in counts):
            return None
        return float(sum(counts[k] * costs[k] for k in counts if counts[k]))
