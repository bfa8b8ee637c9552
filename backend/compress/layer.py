"""What a prefill scorer sees of one layer: its keys, values, queries and attention.

Everything is what the model computed, taken at its attention function (backend/attention/
seam.py) during the one prefill: the final queries and keys (after q/k norms and rotary, on
every architecture), the values, and the model's own attention weights (soft-caps applied; a
learned sink's share is not on any key, so gpt-oss's rows sum to less than 1). Window rows are
rows of those weights; when a forward gave no weights, they are recomputed block by block by
the model's own eager attention on the captured queries, never as a hand-written softmax.
Pre-rotary queries (Expected Attention's statistics) are the captured ones rotated back by
the layer's own rotary (backend/attention/rotary.py); a layer without rotary has none to undo.
All scoring runs in float32. One layer lives at a time.
"""
from functools import cached_property

CHUNK = 256  # queries per block when the attention has to be recomputed (no weights from the forward)


class LayerInputs:
    def __init__(self, call, weights, rotary, layer: int, layers: int):
        """call: seam.Call of the prefill (batch 1); weights [1, H, n, n] or None; rotary: LayerRotary or None."""
        self.call, self.rotary = call, rotary
        self.keys, self.values = call.key[0].float(), call.value[0].float()  # [KV, n, d], keys as cached
        self.attention = None if weights is None else weights[0]
        self.layer, self.layers = layer, layers
        self.kv_heads, self.n, self.head_dim = self.keys.shape
        self.heads = call.query.shape[1]
        self.group = self.heads // self.kv_heads
        self._windows = {}

    def rotated_queries(self, start: int = 0):
        """[H, n − start, d] queries as the attention used them, for positions start..n−1."""
        return self.call.query[0, :, start:].float()

    def prerope_queries(self, start: int = 0):
        """[H, n − start, d] queries before the rotary embedding (kvpress's get_prerope_query_states)."""
        import torch

        q = self.rotated_queries(start)
        if self.rotary is None:
            return q
        back = -torch.arange(start, self.n, device=q.device)  # R(−p)·R(p)·q = q, the same p for every head
        return self.rotary.rotate(q, back).float()

    def _rows(self, a: int, b: int):
        """[H, b − a, n]: queries a..b−1's attention over every key, by the model's own eager attention."""
        import torch

        call = self.call
        if call.mask is not None:
            mask = call.mask[:, :, a:b]
        else:  # no mask was built (a one-sequence forward may skip it): the causal one
            i, j = torch.arange(a, b)[:, None], torch.arange(self.n)[None]
            low = torch.finfo(call.query.dtype).min
            mask = torch.zeros(b - a, self.n, dtype=call.query.dtype).masked_fill(j > i, low)[None, None]
        return call.eager(query=call.query[:, :, a:b], mask=mask.to(call.query.device))[1][0].float()

    def window_attention(self, w: int):
        """[H, w, n]: the last w queries' attention over every key (causal inside the window)."""
        if w not in self._windows:
            rows = self.attention[:, self.n - w:] if self.attention is not None else self._rows(self.n - w, self.n)
            self._windows[w] = rows.float()
        return self._windows[w]

    @cached_property
    def attention_sums(self):
        """[H, n]: attention each key received, summed over every context query (H2O's accumulated score)."""
        import torch

        if self.attention is not None:  # the forward's own weights
            return self.attention.float().sum(dim=1)
        total = torch.zeros(self.heads, self.n, device=self.keys.device)
        for a in range(0, self.n, CHUNK):
            total += self._rows(a, min(a + CHUNK, self.n)).sum(dim=1)
        return total

    def mean_rotation(self, start: int, count: int):
        """[d, d]: the layer's rotation averaged over positions start..start+count−1 (identity without rotary)."""
        import torch

        if self.rotary is None:
            return torch.eye(self.head_dim, device=self.keys.device)
        return self.rotary.mean_matrix(start, count, self.head_dim, self.keys.device)

    def per_kv_head(self, per_query_head):
        """[H, n] → [KV, n]: the mean over each GQA group's query heads (as kvpress aggregates)."""
        return per_query_head.view(self.kv_heads, self.group, -1).mean(dim=1)


class LayerCopy(LayerInputs):
    """What a scorer may read of a layer, as CPU copies: for user score() files, which run in a worker
    process (backend/usercode/) and must never hold the live model or cache."""

    def __init__(self, view: LayerInputs):
        def cpu(t):
            return t.detach().to("cpu", copy=True)

        self.call = self.rotary = None
        self.keys, self.values = cpu(view.keys), cpu(view.values)
        self.attention = cpu(view.attention if view.attention is not None else view._rows(0, view.n))
        self._queries, self._prerope = cpu(view.rotated_queries()), cpu(view.prerope_queries())
        self.layer, self.layers = view.layer, view.layers
        self.kv_heads, self.n, self.head_dim = view.kv_heads, view.n, view.head_dim
        self.heads, self.group = view.heads, view.group
        self._windows = {}

    def rotated_queries(self, start: int = 0):
        return self._queries[:, start:]

    def prerope_queries(self, start: int = 0):
        return self._prerope[:, start:]

    def mean_rotation(self, start: int, count: int):
        raise NotImplementedError("mean_rotation is not part of what a score() file reads")
