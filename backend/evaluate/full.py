"""Full (dense) Cache, run in chunks: the reference every policy is compared with, and the
prefix every policy shares (until the cache first overflows nothing differs).

One forward per chunk of 64 tokens over a growing transformers cache, so memory is the
cache (O(n)) plus one chunk's logits and attention, never n × n.
"""
import numpy as np

CHUNK = 64


def kv_head_rows(attentions, kv_heads: int, double: bool = True):
    """[layers] of [B, heads, q, k] → float64 [B, layers·KV heads, q, k]: each KV head's row is
    the mean over the query heads of its group (kvpress aggregates a GQA group the same way).
    double=False: float32, the same values unconverted (for the kernels' fixed point they are
    the same: scaling by 2^24 and rounding is exact in either)."""
    import torch

    b, heads, q, k = attentions[0].shape
    out = torch.empty(b, len(attentions), kv_heads, q, k)
    for layer, x in enumerate(attentions):  # layer by layer into one buffer: no stacked copy of every head
        torch.mean(x.float().view(b, kv_heads, heads // kv_heads, q, k), dim=2, out=out[:, layer])
    out = out.view(b, -1, q, k)
    return (out.double() if double else out).numpy()


class FullPass:
    """Advance with `upto(t)`; then `logprobs(t)` or `attention(t)` for any t in the current chunk."""

    def __init__(self, loaded, ids: list[int], attention_until: int, logits: bool = True, cache=None,
                 split_at: int | None = None):
        """logits=False: no log-probs (Retrieval needs only the cache and the first attentions). cache: the
        cache to fill (default a DynamicCache; a quantized one, backend/quantize); split_at: a chunk ends there,
        so the cache then holds exactly that many entries (a quantized cache's state to start policies from)."""
        from transformers import DynamicCache

        self.loaded, self.ids, self.attention_until, self.logits = loaded, ids, attention_until, logits
        self.cache = DynamicCache() if cache is None else cache
        self.split_at = split_at
        self.start = self.end = 0
        self.lp = None
        self.rows = None  # [units, q, k] for the chunk, while t < attention_until

    def _chunk(self, size: int) -> tuple[int, int]:
        a, b = self.end, min(self.end + size, len(self.ids))
        return a, (self.split_at if self.split_at is not None and a < self.split_at < b else b)

    def advance(self) -> None:
        import torch

        a, b = self._chunk(CHUNK)
        want = a < self.attention_until
        with torch.inference_mode():
            out = self.loaded.model(input_ids=torch.tensor([self.ids[a:b]], device=self.loaded.device),
                                    position_ids=torch.arange(a, b, device=self.loaded.device)[None],
                                    past_key_values=self.cache, use_cache=True, output_attentions=want,
                                    logits_to_keep=0 if self.logits else 1)
        self.lp = torch.log_softmax(out.logits[0].float(), dim=-1).cpu() if self.logits else None
        self.rows = kv_head_rows(out.attentions, self.loaded.spec["kv_heads"])[0] if want else None
        self.start, self.end = a, b

    def extend(self, report=lambda: None, chunk: int = CHUNK) -> None:
        """The rest of the context into the cache, with no log-probs or attentions (Retrieval needs
        only the cache): the lm_head runs on one row per forward. report() between forwards."""
        import torch

        while self.end < len(self.ids):
            a, b = self._chunk(chunk)
            with torch.inference_mode():
                self.loaded.model(input_ids=torch.tensor([self.ids[a:b]], device=self.loaded.device),
                                  position_ids=torch.arange(a, b, device=self.loaded.device)[None],
                                  past_key_values=self.cache, use_cache=True, logits_to_keep=1)
            self.start, self.end, self.lp, self.rows = a, b, None, None
            report()

    def upto(self, t: int) -> None:
        """Advance until token t is in the current chunk."""
        while t >= self.end:
            self.advance()

    def logprobs(self, t: int):
        self.upto(t)
        return self.lp[t - self.start]

    def attention(self, t: int) -> np.ndarray:
        """Query t over keys 0..t, per KV head: [layers·KV heads, t + 1] (t < attention_until)."""
        self.upto(t)
        return self.rows[:, t - self.start, : t + 1]

    def prefix_kv(self, k: int):
        """The first k cached entries of every layer: (keys, values) [1, KV, k, d]."""
        return [(layer.keys[:, :, :k].clone(), layer.values[:, :, :k].clone()) for layer in self.cache.layers]
