"""Quest's own page choice on a model trace: the fetch set the Cache Profile's top-k fetch reads.

The tier simulator stays pure (kernels/tiers/ takes a fetch array); here the loaded model runs
the text once, and at every decode step t (query t over keys 0..t) Quest (backend/evaluate/quest.py,
whose bound and ranking are reused: upper_bounds, choose_pages) picks, per layer and KV head,
the top-k finished pages by U = Σ_c max(q_c·min_c, q_c·max_c) — every finished page while there
are at most k — plus the current page, which is always in HBM (the newest block) in the profile.

Pages are Quest's 16 tokens, so a profile block must be 16 tokens (block_size ≠ 16 is refused:
a block holding parts of several pages has no single Quest answer). The profile simulates one
stream of blocks while Quest chooses per (layer, KV head), so the trace's aggregation decides:
  - one layer and head: exactly that head's KV head's choice (the group's mean bound, as Quest here);
  - a layer's mean over heads, or all layers: the k pages chosen by the most (layer, KV head)s
    (ties → the earlier page). With one KV head in play this is the choice itself.
"""
import numpy as np

from ..errors import UserError
from ..evaluate.quest import PAGE, choose_pages, upper_bounds

STEPS_PER_CHUNK = 128  # queries whose bounds exist at once: [chunk, KV, G, pages, d] floats


def queries_and_keys(loaded, ids: list[int], wanted=None) -> list[tuple]:
    """Per layer (rotated queries [H, n, d], rotated keys [KV, n, d]) as the attention used them, float32:
    taken at the model's attention function (backend/attention/seam.py), so on every architecture; None for
    a layer not in `wanted` (None: every layer), so one layer's trace holds one layer's tensors."""
    import torch

    from ..attention.seam import attention_layers, outside_interface_message, through_interface, tapped

    if not through_interface(loaded.model):
        raise UserError("unsupported_model", outside_interface_message(loaded.model, "Quest's fetch rule"), "fetch_rule")
    got = [None] * len(attention_layers(loaded.model))

    def tap(call):
        if wanted is None or call.layer in wanted:
            got[call.layer] = (call.query[0].float(), call.key[0].float())
        return call.eager()

    with torch.inference_mode(), tapped(tap):
        loaded.model(input_ids=torch.tensor([ids], device=loaded.device),
                     position_ids=torch.arange(len(ids), device=loaded.device)[None], use_cache=False,
                     logits_to_keep=1)
    return got


def page_choices(queries, keys, k: int, check=lambda: None):
    """Quest's finished pages per (KV head, step): int64 [KV, n, k] ascending, −1 pads (fewer than k finished).

    queries [H, n, d], keys [KV, n, d]. Step t ranks the t // 16 finished pages; the others score −inf
    so they sort last and are cut. check() runs before each chunk of steps (the job's Cancel raises there)."""
    import torch

    heads, n, _ = queries.shape
    kv = keys.shape[0]
    pages = n // PAGE  # full pages; the last (partial) one is only ever the current page
    out = torch.full((kv, n, k), -1, dtype=torch.int64)
    if pages == 0 or k == 0:
        return out
    blocks = keys[:, : pages * PAGE].unflatten(1, (pages, PAGE))
    mins, maxs = blocks.amin(dim=2)[None], blocks.amax(dim=2)[None]  # [1, KV, P, d]
    for a in range(0, n, STEPS_PER_CHUNK):
        check()
        b = min(n, a + STEPS_PER_CHUNK)
        q = queries[:, a:b].transpose(0, 1)[:, :, None]  # [steps, H, 1, d]: one batch entry per step
        u = upper_bounds(q, mins, maxs, heads // kv)  # [steps, KV, P]
        finished = torch.arange(a, b, device=u.device)[:, None, None] // PAGE
        u = u.masked_fill(torch.arange(pages, device=u.device)[None, None] >= finished, float("-inf"))
        chosen = choose_pages(u, min(k, pages))  # [steps, KV, ≤k] ascending
        chosen = chosen.masked_fill(chosen >= finished, -1)  # the cut pages sort last: real ones stay ascending
        out[:, a:b, : chosen.shape[-1]] = chosen.transpose(0, 1).cpu()
    return out


def add_votes(counts: np.ndarray, choices: np.ndarray) -> None:
    """Adds [heads, n, k] choices into counts [n, n_blocks + 1] (the last column collects the −1 pads)."""
    n_blocks = counts.shape[1] - 1
    rows = np.broadcast_to(np.arange(choices.shape[1])[None, :, None], choices.shape)
    np.add.at(counts, (rows.ravel(), np.where(choices < 0, n_blocks, choices).ravel()), 1)


def vote(choices: np.ndarray, k: int, n_blocks: int, counts: np.ndarray | None = None) -> np.ndarray:
    """[heads, n, k] choices → [n, k]: per step the k pages chosen by the most heads (ties → the earlier page).
    counts: votes already added (add_votes), for choices given layer by layer; then choices may be None."""
    if counts is None:
        counts = np.zeros((choices.shape[1], n_blocks + 1), np.int64)
        add_votes(counts, choices)
    n = counts.shape[0]
    counts = counts[:, :n_blocks]
    order = np.argsort(-counts, axis=1, kind="stable")[:, :k]  # most votes first, the earlier page on ties
    picked = np.where(np.take_along_axis(counts, order, axis=1) > 0, order, n_blocks)
    picked = np.sort(picked, axis=1)
    return np.where(picked == n_blocks, -1, picked).astype(np.int64)


def fetch_sets(loaded, ids: list[int], k: int, block_size: int, layer: int | None, head: int | None,
               aggregate: str, check=lambda: None) -> np.ndarray:
    """int64 [n, min(k, pages)]: the blocks the profile's top-k fetch reads at each step under Quest's choice.

    A step can fetch at most every finished page, so k past the text's pages changes nothing and is cut
    to them: the arrays stay [KV, n, pages] at most, and votes are added layer by layer (not one
    [layers·KV, n, k] stack). check() runs between layers and chunks of steps (Cancel raises there)."""
    if block_size != PAGE:  # service.parse refuses this first, with the same code
        raise UserError("page_size_mismatch", f"Quest's pages are {PAGE} tokens; the block size is {block_size}.",
                        "block_size")
    n_layers = loaded.spec["layers"]
    picked = range(n_layers) if aggregate == "all_layers" else [layer % n_layers]
    layers = queries_and_keys(loaded, ids, set(picked))
    n = len(ids)
    n_blocks = -(-n // PAGE)
    k = min(k, max(1, n // PAGE))  # the finished pages a step can rank (page_choices pads with −1 past them)
    counts = np.zeros((n, n_blocks + 1), np.int64)
    for i in picked:
        check()
        q, keys = layers[i]
        layers[i] = None  # this layer's tensors go once its votes are in
        c = page_choices(q, keys, k, check).numpy()
        if aggregate != "all_layers" and head is not None:
            c = c[head // (q.shape[0] // keys.shape[0])][None]  # the KV head that query head reads
        add_votes(counts, c)
    return vote(None, k, n_blocks, counts)
