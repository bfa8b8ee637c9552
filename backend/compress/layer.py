"""What a prefill scorer sees of one layer: its keys, values, queries and window attention.

The prefill runs once with full (eager) attention. A forward hook on every attention
module (as kvpress's BasePress.forward_hook) hands the layer's input hidden states, its
rotary embedding and its freshly cached keys/values to `LayerInputs`; scorers ask it for
what they need and it computes each thing once, lazily, then the layer is dropped, so
no more than one layer's n × n attention ever exists (the eager forward makes that one
anyway, and it is reused rather than recomputed).

Queries are recomputed from the attention input with q_proj and the rotary embedding,
as kvpress's get_prerope_query_states + apply RoPE do; window attention is computed
from them (softmax over every key, causal inside the window), as kvpress's
SnapKVPress.compute_window_attention does. All scoring runs in float32.
"""
from functools import cached_property

from ..evaluate.rope import rotate_half

CHUNK = 256  # queries per block when the full attention has to be recomputed (no eager weights)


class LayerInputs:
    def __init__(self, module, hidden, position_embeddings, keys, values, attention, rotary_emb,
                 layer: int, layers: int):
        """hidden [n, hidden]; keys/values [KV, n, d] as cached (keys rotated); attention [H, n, n] or None."""
        self.module, self.hidden, self.position_embeddings = module, hidden, position_embeddings
        self.keys, self.values = keys.float(), values.float()
        self.attention, self.rotary_emb = attention, rotary_emb
        self.layer, self.layers = layer, layers
        self.kv_heads, self.n, self.head_dim = keys.shape
        self.heads = module.config.num_attention_heads
        self.group = self.heads // self.kv_heads
        self.scaling = float(getattr(module, "scaling", self.head_dim ** -0.5))
        self._windows = {}

    def prerope_queries(self, start: int = 0):
        """[H, n − start, d] queries before the rotary embedding (kvpress's get_prerope_query_states)."""
        module, h = self.module, self.hidden[start:]
        q = module.q_proj(h).view(h.shape[0], self.heads, self.head_dim).transpose(0, 1)
        norm = getattr(module, "q_norm", None)  # Qwen3 / Gemma3 normalise queries before RoPE
        return (norm(q) if norm is not None else q).float()

    @cached_property
    def queries(self):
        """[H, n, d] queries as the attention used them (rotated)."""
        import torch

        cos, sin = (x[0].float() for x in self.position_embeddings)  # [n, d]
        q = self.prerope_queries()
        rot = cos.shape[-1]
        moved = q[..., :rot] * cos + rotate_half(q[..., :rot]) * sin
        return moved if rot == q.shape[-1] else torch.cat((moved, q[..., rot:]), dim=-1)

    def _keys_per_head(self):
        return self.keys.repeat_interleave(self.group, dim=0)  # [H, n, d], query head h reads KV head h // group

    def window_attention(self, w: int):
        """[H, w, n]: the last w queries' attention over every key (causal inside the window)."""
        import torch

        if w not in self._windows:
            q = self.queries[:, -w:]
            logits = torch.matmul(q, self._keys_per_head().transpose(1, 2)) * self.scaling
            causal = torch.ones(w, self.n, dtype=torch.bool, device=q.device).triu(self.n - w + 1)
            self._windows[w] = torch.softmax(logits.masked_fill(causal, float("-inf")), dim=-1)
        return self._windows[w]

    @cached_property
    def attention_sums(self):
        """[H, n]: attention each key received, summed over every context query (H2O's accumulated score)."""
        import torch

        if self.attention is not None:  # the eager forward's own weights
            return self.attention.float().sum(dim=1)
        keys, total = self._keys_per_head(), torch.zeros(self.heads, self.n, device=keys.device)
        for a in range(0, self.n, CHUNK):
            b = min(a + CHUNK, self.n)
            logits = torch.matmul(self.queries[:, a:b], keys.transpose(1, 2)) * self.scaling
            causal = torch.ones(b - a, self.n, dtype=torch.bool, device=keys.device).triu(a + 1)
            total += torch.softmax(logits.masked_fill(causal, float("-inf")), dim=-1).sum(dim=1)
        return total

    def rotation(self, start: int, count: int):
        """cos, sin [count, d] of the rotary embedding at positions start..start+count−1."""
        import torch

        ids = torch.arange(start, start + count, device=self.keys.device)[None]
        cos, sin = self.rotary_emb(self.keys[None], ids)
        return cos[0].float(), sin[0].float()

    def per_kv_head(self, per_query_head):
        """[H, n] → [KV, n]: the mean over each GQA group's query heads (as kvpress aggregates)."""
        return per_query_head.view(self.kv_heads, self.group, -1).mean(dim=1)
