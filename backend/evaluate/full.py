"""Full (dense) Cache, run in chunks: the reference every policy is compared with, and the
prefix every policy shares (until the cache first overflows nothing differs).

One forward per chunk of 64 tokens over a growing transformers cache, so memory is the
cache (O(n)) plus one chunk's logits and attention, never n × n.
"""
import numpy as np

CHUNK = 64


def kv_head_rows(attentions, kv_heads: int):
    """[layers] of [B, heads, q, k] → float64 [B, layers·KV heads, q, k]: each KV head's row is
    the mean over the query heads of its group (kvpress aggregates a GQA group the same way)."""
    import torch

    a = torch.stack([x.float() for x in attentions], dim=1)  # [B, L, H, q, k]
    b, layers, heads, q, k = a.shape
    a = a.view(b, layers, kv_heads, heads // kv_heads, q, k).mean(dim=3)
    return a.reshape(b, layers * kv_heads, q, k).numpy().astype(np.float64)


class FullPass:
    """Advance with `chunk_upto(t)`; then `logprobs(t)` for any t in the current chunk."""

    def __init__(self, loaded, ids: list[int], attention_until: int):
        from transformers import DynamicCache

        self.loaded, self.ids, self.attention_until = loaded, ids, attention_until
        self.cache = DynamicCache(config=loaded.model.config)
        self.start = self.end = 0
        self.lp = None
        self.rows = None  # [units, q, k] for the chunk, while t < attention_until

    def advance(self) -> None:
        import torch

        a, b = self.end, min(self.end + CHUNK, len(self.ids))
        want = a < self.attention_until
        with torch.inference_mode():
            out = self.loaded.model(input_ids=torch.tensor([self.ids[a:b]], device=self.loaded.device),
                                    position_ids=torch.arange(a, b, device=self.loaded.device)[None],
                                    past_key_values=self.cache, use_cache=True, output_attentions=want)
        self.lp = torch.log_softmax(out.logits[0].float(), dim=-1).cpu()
        self.rows = kv_head_rows(out.attentions, self.loaded.spec["kv_heads"])[0] if want else None
        self.start, self.end = a, b

    def logprobs(self, t: int):
        while t >= self.end:
            self.advance()
        return self.lp[t - self.start]

    def attention(self, t: int) -> np.ndarray:
        """Query t over keys 0..t, per KV head: [layers·KV heads, t + 1] (t < attention_until)."""
        self.logprobs(t)
        return self.rows[:, t - self.start, : t + 1]

    def prefix_kv(self, k: int):
        """The first k cached entries of every layer: (keys, values) [1, KV, k, d]."""
        return [(layer.keys[:, :, :k].clone(), layer.values[:, :, :k].clone()) for layer in self.cache.layers]
