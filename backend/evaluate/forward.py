"""The re-computation baseline's forward: one query over a kept set of *tokens*, recomputed.

Evicted keys are removed and the kept tokens run again with positions 0..k assigned
inside the window, as StreamingLLM's "sliding window with re-computation" does. The
price is a forward over ≤ C + 1 tokens per step instead of one cached decode step.
"""
import numpy as np


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
