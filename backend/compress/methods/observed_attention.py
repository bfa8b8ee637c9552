"""ObservedAttention: the mean attention each key received from every context query.

H2O's prefill form in kvpress (Zhang et al., "H2O: Heavy-Hitter Oracle", NeurIPS 2023,
arXiv:2306.14048). Follows kvpress presses/observed_attention_press.py exactly: the
eager attention summed over queries, divided by the number of queries that can see the
key (n − j), averaged over the query heads of each KV head. No window is protected.
The attention is the eager prefill's own weights (kvpress requires eager here too).
"""
ATTENTION = "every query"  # the prefill sums each key's column block by block during the forward
PRESS = "ObservedAttentionPress"


def score(layer, settings):
    import torch

    seen_by = torch.arange(layer.n, 0, -1, dtype=torch.float32, device=layer.keys.device)
    return layer.per_kv_head(layer.attention_sums / seen_by)


def protected(settings) -> int:
    return 0
