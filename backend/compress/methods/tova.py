"""TOVA's prefill form: the last context query's attention, averaged over all heads.

Oren et al., "Transformers are Multi-State RNNs" (arXiv:2401.06104); reference code
github.com/schwartz-lab-NLP/TOVA src/tova_cache.py. Follows kvpress
presses/tova_press.py: the last query's attention over the other keys, the mean over
ALL query heads (one score for every KV head, as TOVA does), and the last token itself
kept (max + 1). The attention is computed from the recomputed last query.
"""
PRESS = "TOVAPress"


def score(layer, settings):
    import torch

    a = layer.window_attention(1)[:, 0, :-1]  # [H, n − 1]
    s = a.mean(dim=0).expand(layer.kv_heads, -1)
    return torch.nn.functional.pad(s, (0, 1), value=float(s.max()) + 1)


def protected(settings) -> int:
    return 1
