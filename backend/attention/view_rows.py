"""A view's attention rows on demand, from one forward: the Quick Attention Test and model traces at the
model's whole context without an n × n matrix.

One forward runs the model with a tap (seam.py) that keeps, for each layer the view needs, the layer's
call as the model made it: its queries and keys (after norms and rotary) and its mask, the mask
kept as one allowed interval of keys per row (causal, sliding window, padding on one side: every mask
SinkVis meets) instead of the n × n tensor. `rows(q0, q1)` then asks the model's own eager attention
(`Call.eager(query=block, mask=rows)`) for just those queries, over every key, and reduces the heads (and
layers) to the view. So a block of rows costs heads × block × n floats, never n × n.

The forward itself: up to WHOLE tokens every layer answers with its own eager attention, the arithmetic
the Quick Attention Test always used (so the numbers there are unchanged, bit for bit); past that it
answers with transformers' sdpa (the fast attention), or the eager attention block by block for a model
whose attention sdpa cannot express (learned sinks, a soft-cap).

Memory held after the forward: per kept layer its queries and keys (SmolLM2, 8,192 tokens, fp32: 25.2 MB a
layer; 755 MB for all 30) and two int64 per row (the mask's interval).
"""
import numpy as np

from ..errors import UserError

WHOLE = 1024                # up to this many tokens: one block, the model's own eager forward
BLOCK_BYTES = 64 * 2**20    # past it: one block's weights (heads × rows × n float32) stay under this


def rows_per_block(n: int, heads: int) -> int:
    return n if n <= WHOLE else max(1, BLOCK_BYTES // (4 * heads * n))


class RowMask:
    """The model's mask as one allowed interval [lo, hi) of keys per row, rebuilt on demand for a block of rows
    as the additive mask eager attention adds (0 allowed, the dtype's min elsewhere: the very values of the
    model's eager mask). It takes the mask in either form the seam hands out: eager's additive [1, 1, q, k], or
    sdpa's (None = plain causal, else boolean, True = attend), which the long-text forward asks for so that no
    n × n float mask is ever built. A mask that is no such interval is kept as it is (correct, just not small)."""

    def __init__(self, mask, query):
        import torch

        self.mask, self.lo, self.hi = mask, None, None
        self.dtype, self.device = (mask.dtype, mask.device) if mask is not None and mask.is_floating_point() \
            else (query.dtype, query.device)
        self.blocked = torch.finfo(self.dtype).min
        q = query.shape[-2]
        self.keys = q if mask is None else int(mask.shape[-1])
        if mask is None:  # plain causal over the q queries (a prefill: as many keys)
            self.lo, self.hi = torch.zeros(q, dtype=torch.int64), torch.arange(1, q + 1)
            return
        if mask.dim() != 4 or mask.shape[0] != 1 or mask.shape[1] != 1:
            return
        k = mask.shape[-1]
        lo, hi = torch.empty(q, dtype=torch.int64), torch.empty(q, dtype=torch.int64)
        cols = torch.arange(k, device=mask.device)
        step = max(1, (16 * 2**20) // max(1, k))
        for a in range(0, q, step):
            m = mask[0, 0, a:a + step]
            if m.dtype == torch.bool:
                allowed = m
            else:
                allowed = m == 0
                if not bool((allowed | (m == self.blocked)).all()):
                    return
            count = allowed.sum(-1)
            first = torch.where(allowed, cols, k).amin(-1)
            last = torch.where(allowed, cols, -1).amax(-1)
            if not bool(((count == 0) | (last + 1 - first == count)).all()):
                return  # not one interval per row
            first = torch.where(count > 0, first, 0)
            lo[a:a + step], hi[a:a + step] = first.cpu(), (first + count).cpu()
        self.lo, self.hi = lo, hi
        self.mask = None  # the intervals say it all: the n × n tensor goes with the forward

    def span(self, q0: int, q1: int) -> tuple[int, int]:
        """The keys any of rows q0..q1−1 may see, [first, last + 1): all of them when the mask is no interval."""
        if self.lo is None:
            return 0, self.keys
        return int(self.lo[q0:q1].min()), max(int(self.hi[q0:q1].max()), int(self.lo[q0:q1].min()) + 1)

    def rows(self, q0: int, q1: int):
        import torch

        if self.lo is None:
            if self.mask is None or self.mask.dtype != torch.bool:
                return None if self.mask is None else self.mask[:, :, q0:q1]
            rows = self.mask[:, :, q0:q1]
            return torch.zeros(rows.shape, dtype=self.dtype, device=self.device).masked_fill(~rows, self.blocked)
        cols = torch.arange(self.keys, device=self.device)
        lo, hi = self.lo[q0:q1, None].to(self.device), self.hi[q0:q1, None].to(self.device)
        allowed = (cols >= lo) & (cols < hi)
        zero = torch.zeros((), dtype=self.dtype, device=self.device)
        return torch.where(allowed, zero, torch.tensor(self.blocked, dtype=self.dtype, device=self.device))[None, None]


class Kept:
    """One layer's attention call, kept to recompute any of its rows later with the model's own eager attention."""

    def __init__(self, call):
        from .seam import Call

        # The keys stand in for the values: the weights never read them, and the output that would is dropped
        # (a quarter less to hold on a GQA model).
        self.call = Call(call.module, call.query, call.key, call.key, None, call.kwargs)
        self.mask = RowMask(call.mask, call.query)
        self.heads = int(call.query.shape[1])

    def weights(self, q0: int, q1: int) -> np.ndarray:
        """float32 [heads, q1 - q0, keys]: the model's attention weights of queries q0..q1-1. Only the keys
        the block's mask lets it see are computed (causal: half the work over a long text); the others
        are exactly 0, as the eager softmax gives them."""
        import dataclasses

        k0, k1 = self.mask.span(q0, q1)
        mask = self.mask.rows(q0, q1)
        call = self.call
        if (k0, k1) != (0, self.mask.keys):
            call = dataclasses.replace(call, key=call.key[:, :, k0:k1], value=call.key[:, :, k0:k1])
            mask = mask[..., k0:k1]
        _, w = call.eager(query=self.call.query[:, :, q0:q1], mask=mask)
        seen = w[0].float().cpu().numpy()
        if (k0, k1) == (0, self.mask.keys):
            array = seen
        else:
            array = np.zeros((seen.shape[0], q1 - q0, self.mask.keys), np.float32)
            array[:, :, k0:k1] = seen
        if not np.isfinite(array).all():
            raise UserError("non_finite", "The attention weights contain inf/NaN (fp16 overflow?); reload the model in "
                            "fp32 or bf16.", "precision")
        return array


def _fast(call):
    """The layer's output for the forward past WHOLE tokens, without its n × n weights (the mask as sdpa gets it)."""
    import torch

    if call.sinks is None and not call.kwargs.get("softcap"):
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(call.module, call.query, call.key, call.value, call.mask, **call.kwargs)
    step, mask = rows_per_block(call.query.shape[-2], call.query.shape[1]), RowMask(call.mask, call.query)
    outs = [call.eager(query=call.query[:, :, a:a + step], mask=mask.rows(a, a + step))[0]
            for a in range(0, call.query.shape[-2], step)]
    return torch.cat(outs, dim=1), None


class ViewRows:
    """The rows of one view (a layer's head, a layer's mean over heads, or the mean over every layer and head)
    of the loaded model's attention on `ids`; `rows(q0, q1)` → float32 [q1 - q0, n]."""

    def __init__(self, loaded, ids: list[int], layers: list[int], head=None):
        import torch

        from .seam import tapped

        self.loaded, self.n, self.layers, self.head = loaded, len(ids), list(layers), head
        self.learned_sinks = False
        kept = {}
        wanted = set(self.layers)

        def tap(call):
            if call.layer in wanted:
                kept[call.layer] = Kept(call)
                self.learned_sinks |= call.sinks is not None  # gpt-oss: part of each row goes to no key
            return call.eager() if self.n <= WHOLE else _fast(call)

        # past WHOLE, sdpa's masks: None where plain causal, else boolean; eager's n × n floats are 4n² bytes
        with torch.inference_mode(), tapped(tap, masks="eager" if self.n <= WHOLE else "sdpa"):
            loaded.model(input_ids=torch.tensor([ids], device=loaded.device), use_cache=False, logits_to_keep=1)
        missing = wanted - set(kept)
        if missing:
            raise UserError("no_attentions", f"Layer {min(missing)} never called its attention function; this model "
                            "did not return attention weights.")
        self.kept = [kept[i] for i in self.layers]
        self.heads = self.kept[0].heads

    @property
    def block(self) -> int:
        return rows_per_block(self.n, self.heads)

    def rows(self, q0: int, q1: int) -> np.ndarray:
        import torch

        with torch.inference_mode():
            if len(self.kept) == 1:
                w = self.kept[0].weights(q0, q1)
                return (w.mean(axis=0) if self.head is None else w[self.head]).astype(np.float32)
            # The mean over layers and heads, summed in the order numpy's mean over (layer, head) sums:
            # the same float32 bits as the stacked [L, H, n, n] mean this replaces.
            total = np.zeros((q1 - q0, self.n), np.float32)
            for kept in self.kept:
                w = kept.weights(q0, q1)
                for h in range(w.shape[0]):
                    total += w[h]
            return total / np.float32(len(self.kept) * self.heads)

    def blocks(self, q0: int = 0, q1: int | None = None):
        """(first row, rows) for consecutive blocks of queries q0..q1-1."""
        q1 = self.n if q1 is None else q1
        for a in range(q0, q1, self.block):
            yield a, self.rows(a, min(q1, a + self.block))


class DenseRows(ViewRows):
    """The same rows for a model that computes attention its own way and never calls the attention interface
    (Falcon): one forward with output_attentions, every layer's n × n weights held, so up to WHOLE tokens only."""

    def __init__(self, loaded, ids: list[int], layers: list[int], head, forward_attentions):
        """forward_attentions: extract.py's (every layer's weights and whether the model has learned sinks)."""
        if len(ids) > WHOLE:
            raise UserError("too_long", f"The text is {len(ids):,} tokens; this model computes attention outside "
                            "transformers' attention interface, so its whole matrices are held, up to "
                            f"{WHOLE:,} tokens. Shorten the text.", "text")
        attentions, sinks = forward_attentions(loaded, ids)
        self.loaded, self.n, self.layers, self.head, self.learned_sinks = loaded, len(ids), list(layers), head, sinks
        self.kept = [_Held(attentions[i]) for i in self.layers]
        self.heads = self.kept[0].heads


class _Held:
    """A layer's whole weights [1, H, n, n], answering like Kept."""

    def __init__(self, weights):
        self.array, self.heads = weights, int(weights.shape[1])

    def weights(self, q0: int, q1: int) -> np.ndarray:
        array = self.array[0, :, q0:q1].float().cpu().numpy()
        if not np.isfinite(array).all():
            raise UserError("non_finite", "The attention weights contain inf/NaN (fp16 overflow?); reload the model in "
                            "fp32 or bf16.", "precision")
        return array
