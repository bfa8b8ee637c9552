"""What a prefill scorer sees of one layer: its keys, values, queries and attention.

Everything is what the model computed, taken at its attention function (backend/attention/
seam.py) during the one prefill: the final queries and keys (after q/k norms and rotary, on
every architecture) and the values. No n × n attention is held: window rows (SnapKV's last 64
queries, TOVA's last one) are computed on demand by the model's own eager attention on those
queries only (backend/compress/blocks.py; soft-caps applied; a learned sink's share is not on
any key, so gpt-oss's rows sum to less than 1), and the attention each key received from every
query (H2O, ObservedAttention) is summed block by block, during the forward when the prefill
knows a method needs it. Pre-rotary queries (Expected Attention's statistics) are the captured
ones rotated back by the layer's own rotary (backend/attention/rotary.py); a layer without
rotary has none to undo. All scoring runs in float32. One layer lives at a time.
"""
from functools import cached_property

from . import blocks


class LayerInputs:
    def __init__(self, call, rotary, layer: int, layers: int, sums=None):
        """call: seam.Call of the prefill (batch 1); rotary: LayerRotary or None; sums: the column sums [H, n]
        when the forward already computed them (blocks.eager_blocks), else computed here on demand."""
        self.call, self.rotary, self._sums = call, rotary, sums
        self.keys, self.values = call.key[0].float(), call.value[0].float()  # [KV, n, d], keys as cached
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

    def window_attention(self, w: int):
        """[H, w, n]: the last w queries' attention over every key (causal inside the window)."""
        if w not in self._windows:
            self._windows[w] = blocks.rows(self.call, self.n - w, self.n)
        return self._windows[w]

    @cached_property
    def attention_sums(self):
        """[H, n]: attention each key received, summed over every context query (H2O's accumulated score)."""
        return self._sums if self._sums is not None else blocks.eager_blocks(self.call, sums=True)[1]

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
    process (backend/usercode/) and must never hold the live model or cache. The worker has no model to
    recompute attention rows from, so the rows travel with the copy: every row up to WHOLE_ROWS tokens
    ([H, n, n], 151 MB for SmolLM2 at 2,048), past that the last WINDOW_ROWS rows and the column sums
    (summed block by block here, never n × n: SmolLM2 at 8,192 tokens ships 38 MB of rows a layer)."""

    WHOLE_ROWS = 2048
    WINDOW_ROWS = 128  # twice SnapKV's and PyramidKV's window (64); TOVA reads one

    def __init__(self, view: LayerInputs):
        def cpu(t):
            return t.detach().to("cpu", copy=True)

        self.call = self.rotary = None
        self.keys, self.values = cpu(view.keys), cpu(view.values)
        n = view.n
        self.first_row = 0 if n <= self.WHOLE_ROWS else n - self.WINDOW_ROWS
        self.rows = cpu(blocks.rows(view.call, self.first_row, n))  # [H, n − first_row, n]
        self._sums = None if self.first_row == 0 else cpu(view.attention_sums)
        self._queries, self._prerope = cpu(view.rotated_queries()), cpu(view.prerope_queries())
        self.layer, self.layers = view.layer, view.layers
        self.kv_heads, self.n, self.head_dim = view.kv_heads, view.n, view.head_dim
        self.heads, self.group = view.heads, view.group
        self._windows = {}

    def rotated_queries(self, start: int = 0):
        return self._queries[:, start:]

    def window_attention(self, w: int):
        if self.n - w < self.first_row:
            raise ValueError(f"window_attention(w) reads at most the last {self.n - self.first_row} queries at "
                             f"{self.n:,} tokens in a score() file (asked for {w}); for every query's attention "
                             "use layer.attention_sums")
        return self.rows[:, self.n - w - self.first_row:]

    @cached_property
    def attention_sums(self):
        return self._sums if self._sums is not None else self.rows.sum(dim=1)

    def prerope_queries(self, start: int = 0):
        return self._prerope[:, start:]

    def mean_rotation(self, start: int, count: int):
        raise NotImplementedError("mean_rotation is not part of what a score() file reads")
