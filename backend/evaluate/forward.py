"""The two forwards evaluation needs: the full prefix once, and one query over a kept set.

Evicted keys are *removed*, not masked: at every step the model runs over the kept
tokens plus the new one, with positions 0..k assigned inside the cache, as
StreamingLLM does. That is the one scheme that works past the context length for
learned absolute positions (GPT-2: a key's position is baked into its K/V, so a
cached K/V cannot be moved) and for rotary alike. The price is a forward over
≤ C + 1 tokens per step instead of one cached decode step.
"""
import numpy as np


def _mean_attention(attentions) -> np.ndarray:
    """[layers][1, heads, q, k] → [q, k]: what every policy observes (mean over layers and heads)."""
    import torch

    return torch.stack([a[0].float() for a in attentions]).mean(dim=(0, 1)).cpu().numpy().astype(np.float64)


def full_prefix(loaded, ids: list[int]):
    """One forward over ids (≤ context): log-probs [n, V] and the mean attention [n, n]."""
    import torch

    with torch.inference_mode():
        out = loaded.model(input_ids=torch.tensor([ids], device=loaded.device), output_attentions=True, use_cache=False)
    logprobs = torch.log_softmax(out.logits[0].float(), dim=-1).cpu()
    return logprobs, _mean_attention(out.attentions)


def over_kept(loaded, ids: list[int], kept: np.ndarray, t: int):
    """Query t over the kept keys: its log-probs [V] and its attention over kept + itself."""
    import torch

    tokens = [ids[j] for j in kept] + [ids[t]]
    positions = torch.arange(len(tokens), device=loaded.device)[None]
    with torch.inference_mode():
        out = loaded.model(input_ids=torch.tensor([tokens], device=loaded.device), position_ids=positions,
                           output_attentions=True, use_cache=False)
    logprobs = torch.log_softmax(out.logits[0, -1].float(), dim=-1).cpu()
    attn = torch.stack([a[0, :, -1].float() for a in out.attentions]).mean(dim=(0, 1)).cpu().numpy().astype(np.float64)
    return logprobs, attn
