"""`quest`: query-aware page selection at decode time; nothing is evicted.

Tang et al., "Quest: Query-Aware Sparsity for Efficient Long-Context LLM Inference" (ICML 2024),
reference code github.com/mit-han-lab/Quest. The cache is cut into pages of 16 tokens; each
finished page keeps the per-channel min and max of its keys. At every decode step, per layer and
KV head, the query ranks the finished pages by the upper bound of q·k over the page,

    U(page) = Σ_c max(q_c · min_c, q_c · max_c),

and attends *exactly* (softmax over the chosen keys only) to the top-k pages plus the current
page (the one holding the newest token, finished or not). Memory is Full Cache's; the budget
is what one step reads: k·16 keys plus the current page.

Choices, stated:
- Grouped-query attention: one page choice per KV head (so a group reads its pages once), ranked
  by the mean over the group's query heads of their bounds — the aggregation kvpress uses for a
  GQA group's scores. Quest itself was written for multi-head models (one query per KV head).
- Every layer is sparse. The reference leaves its first two layers dense; SinkVis does not, so the
  budget means the same in every layer.
- Ties in U go to the earlier page (torch.topk on the CPU is not stable, so the ranking is a sort).

Quest is a tap on SinkVis's attention function (backend/attention/seam.py): the pages not read are
masked out of the model's own eager attention, so a soft-cap or learned sinks stay as the model
has them; the tap holds the state (k, the page bounds of each layer, updated as pages fill) and
acts on this thread's forwards only. Sliding-window layers already read only their window.
"""
import numpy as np

PAGE = 16
NAME = "quest"


class QuestState:
    """k pages per step; per layer the min/max of the finished pages' keys, grown incrementally."""

    def __init__(self, pages: int):
        self.k = int(pages)
        self.bounds = {}  # layer → (mins, maxs) [B, KV, finished pages, d]
        self.chosen = {}  # layer → the last step's chosen finished pages [B, KV, ≤k] (ascending)

    def page_bounds(self, layer: int, key):
        """(mins, maxs) of every page before the current one (the page holding the newest key)."""
        import torch

        finished = (key.shape[2] - 1) // PAGE
        mins, maxs = self.bounds.get(layer, (key[:, :, :0], key[:, :, :0]))
        have = mins.shape[2]
        if finished > have:  # pages finished since the last step: reduce them once
            block = key[:, :, have * PAGE: finished * PAGE].unflatten(2, (finished - have, PAGE))
            mins = torch.cat([mins, block.amin(dim=3)], dim=2)
            maxs = torch.cat([maxs, block.amax(dim=3)], dim=2)
            self.bounds[layer] = (mins, maxs)
        return mins[:, :, :finished], maxs[:, :, :finished]


def upper_bounds(query, mins, maxs, groups: int):
    """U per (KV head, page): query [B, H, 1, d], mins/maxs [B, KV, P, d] → [B, KV, P], mean over a group."""
    b, heads, _, d = query.shape
    q = query[:, :, 0].view(b, heads // groups, groups, 1, d)  # [B, KV, G, 1, d]
    u = (q * mins[:, :, None]).maximum(q * maxs[:, :, None]).sum(-1)  # [B, KV, G, P]
    return u.mean(dim=2)


def choose_pages(u, k: int):
    """The top-k pages by U per (batch, KV head), ascending page order; ties → the earlier page."""
    import torch

    order = torch.sort(u, dim=-1, descending=True, stable=True).indices[..., :k]
    return order.sort(dim=-1).values


def quest_tap(quest: QuestState):
    """A seam tap (backend/attention/seam.py): on a one-token decode step each full-attention layer reads
    the top-k pages plus the current page, masked into the model's own eager attention (so soft-caps and
    learned sinks stay the model's); any other call, and a sliding-window layer (it bounds its own
    reads), is the model's attention itself."""
    import torch

    from ..attention.kept_keys import key_mask

    def tap(call):
        key = call.key
        finished = (key.shape[2] - 1) // PAGE
        if call.query.shape[2] != 1 or finished <= quest.k or call.sliding_window:  # every page is read
            return call.eager()
        groups = call.query.shape[1] // key.shape[1]
        mins, maxs = quest.page_bounds(call.layer, key)
        pages = choose_pages(upper_bounds(call.query, mins, maxs, groups), quest.k)  # [B, KV, k]
        quest.chosen[call.layer] = pages
        chosen = torch.zeros(*pages.shape[:2], finished + 1, dtype=torch.bool, device=key.device)
        chosen[..., finished] = True  # the current page
        chosen.scatter_(2, pages, True)
        page_of = (torch.arange(key.shape[2], device=key.device) // PAGE).clamp(max=finished)  # [K]
        read = chosen[..., page_of]  # [B, KV, K]
        return call.eager(mask=key_mask(call, read))

    return tap


def attend_quest(quest: QuestState):
    """Quest's page reads for this thread's forwards inside the block (other threads see the plain model)."""
    from ..attention.seam import tapped

    return tapped(quest_tap(quest))


class Quest:
    """Evaluate's Quest pass: its own cache (all of Full Cache's entries), one cached decode step per token.

    While every finished page fits in k (t < 16·(k + 1)) a step reads everything, so it is the Full
    pass's step itself (taken from full.py): with k covering the text Quest gives Full Cache's numbers.
    """

    def __init__(self, loaded, ids: list[int], cache_size: int):
        self.loaded, self.ids = loaded, ids
        self.state = QuestState(max(1, cache_size // PAGE))
        self.cache = None
        self.read = []  # keys read per step (mean over layers and KV heads is the same: k pages + current)

    @property
    def pages(self) -> int:
        return self.state.k

    def step(self, t: int, full):
        """Log-probs for token t + 1 (query t over keys 0..t)."""
        import torch
        from transformers import DynamicCache

        if t // PAGE <= self.state.k:
            self.read.append(t + 1)
            return full.logprobs(t)
        if self.cache is None:
            full.logprobs(t)  # the Full pass has keys 0..t cached now; Quest starts from 0..t−1
            self.cache = DynamicCache()
            for layer, (k, v) in enumerate(full.prefix_kv(t)):
                self.cache.update(k, v, layer)
        device = self.loaded.device
        with torch.inference_mode(), attend_quest(self.state):
            out = self.loaded.model(input_ids=torch.tensor([[self.ids[t]]], device=device),
                                    position_ids=torch.tensor([[t]], device=device),
                                    past_key_values=self.cache, use_cache=True)
        self.read.append(self.state.k * PAGE + t + 1 - (t // PAGE) * PAGE)
        return torch.log_softmax(out.logits[0, -1].float(), dim=-1).cpu()

    def summary(self) -> dict:
        return {"evictions": 0, "granularity": f"per KV head: top-{self.state.k} pages of {PAGE} + the current page",
                "pages": self.state.k, "page_size": PAGE,
                "keys_read_per_step": float(np.mean(self.read)) if self.read else 0.0,
                "memory_tokens": len(self.ids)}
