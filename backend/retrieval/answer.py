"""After the context: the question and the answer flow through each cache, never compressed.

One batched pass for every cache of the batch (their context parts have the same length):
the question (with attentions: the last question token is the query that produces the first
answer token), then the right answer teacher-forced (its log-probability), then the cache is
cut back to the question and the answer is generated greedily. Positions continue the
context's original ones (the question starts at position len(context)).
"""
import numpy as np

from ..attention.kept_keys import KeptKeys, attending

MAX_NEW_TOKENS = 10  # Landmark Attention's pass key answers are judged on ≤ 10 generated tokens


def _forward(loaded, cache, tokens, start: int, kept: KeptKeys | None, attentions: bool = False):
    """tokens at positions start, start + 1, … after the cache (kept: its entries' original positions)."""
    import torch

    batch = tokens.shape[0]
    positions = torch.arange(start, start + tokens.shape[1], device=loaded.device).expand(batch, -1)
    with torch.inference_mode(), attending(kept):
        return loaded.model(input_ids=tokens.to(loaded.device), position_ids=positions, past_key_values=cache,
                            use_cache=True, output_attentions=attentions)


def _cut(cache, length: int) -> None:
    for layer in cache.layers:
        if hasattr(layer, "cut"):  # a quantized layer (backend/quantize) also cuts its bookkeeping
            layer.cut(length)
        else:
            layer.keys, layer.values = layer.keys[:, :, :length], layer.values[:, :, :length]


def needle_share(attentions, key_pos: np.ndarray, span: tuple[int, int], kv_heads: int) -> np.ndarray:
    """Share of the last query's attention on the needle's positions, per batch row and layer:
    float64 [B, layers] (mean over query heads). key_pos [B, layers·KV heads, k]: the original
    positions of the first k keys (the context part; later keys are the question's)."""
    import torch

    a = torch.stack([x[:, :, -1].float() for x in attentions], dim=1)  # [B, L, H, K]
    b, layers, heads, _ = a.shape
    k = key_pos.shape[-1]
    a = a[..., :k].reshape(b, layers, kv_heads, heads // kv_heads, k).cpu().numpy().astype(np.float64)
    inside = ((key_pos >= span[0]) & (key_pos < span[1])).reshape(b, layers, kv_heads, 1, k)
    return (a * inside).sum(-1).mean(axis=(2, 3))


def answer(loaded, cache, batch: int, key_pos: np.ndarray, start: int, question_ids: list[int], answer_ids: list[int],
           needle_span: tuple[int, int], max_new_tokens: int = MAX_NEW_TOKENS) -> list[dict]:
    """key_pos: [B, layers·KV heads, k] original positions of the cached context entries (k = cache length now);
    start: the question's first position (the context's length). Returns per row: generated (ids),
    answer_logprob, needle_attention [layers]."""
    import torch

    k = key_pos.shape[-1]
    q = torch.tensor([question_ids]).expand(batch, -1)
    kept = KeptKeys.of_units(key_pos, start, loaded.spec["kv_heads"], loaded.model)  # after the context: start, …
    out = _forward(loaded, cache, q, start, kept, attentions=True)
    share = needle_share(out.attentions, key_pos, needle_span, loaded.spec["kv_heads"])
    first = torch.log_softmax(out.logits[:, -1].float(), dim=-1).cpu()
    after_question = k + len(question_ids)
    logprob = first[:, answer_ids[0]].double().numpy()
    if len(answer_ids) > 1:  # teacher-forced: the right answer's tokens, each given the ones before
        forced = _forward(loaded, cache, torch.tensor([answer_ids[:-1]]).expand(batch, -1), start + len(question_ids), kept)
        lps = torch.log_softmax(forced.logits.float(), dim=-1).cpu()
        logprob = logprob + lps.gather(-1, torch.tensor([answer_ids[1:]]).expand(batch, -1)[..., None])[..., 0].double().sum(-1).numpy()
        _cut(cache, after_question)
    eos = loaded.tokenizer.eos_token_id if loaded.tokenizer is not None else None
    token = first.argmax(-1)
    generated, done = [[] for _ in range(batch)], np.zeros(batch, bool)
    for step in range(max_new_tokens):
        for b in range(batch):
            if not done[b]:
                if eos is not None and int(token[b]) == eos:
                    done[b] = True
                else:
                    generated[b].append(int(token[b]))
        if done.all() or step == max_new_tokens - 1:
            break
        out = _forward(loaded, cache, token[:, None], start + len(question_ids) + step, kept)
        token = out.logits[:, -1].float().argmax(-1).cpu()
    return [{"generated": generated[b], "answer_logprob": float(logprob[b]), "needle_attention": share[b]}
            for b in range(batch)]
