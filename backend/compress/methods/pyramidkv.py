"""PyramidKV: SnapKV's scores, with layer budgets falling linearly from the first layer to the last.

Cai et al., "PyramidKV: Dynamic KV Cache Compression based on Pyramidal Information
Funneling" (arXiv:2406.02069); reference code github.com/Zefan-Cai/KVCache-Factory
pyramidkv/pyramidkv_utils.py. Follows kvpress presses/pyramidkv_press.py
(PyramidKVPress.get_layer_budget) exactly, β = 20, window 64: the total stays
n·(1 − ratio) per layer on average; kvpress's fallback to a uniform budget when the
pyramid does not fit (short contexts, high ratios) is kept too.
"""
from .snapkv import WINDOW
from .snapkv import score  # noqa: F401 - PyramidKV scores as SnapKV does

PRESS = "PyramidKVPress"
BETA = 20


def _pyramid(n: int, ratio: float, window: int, beta: int) -> tuple[float, float] | None:
    """(largest, smallest) layer budget, or None where kvpress falls back to a uniform budget."""
    top = window + n * (1 - ratio)  # kvpress's max_capacity_prompt
    min_num = (top - window) / beta
    max_num = (top - window) * 2 - min_num
    if max_num >= n - window:
        max_num = n - window
        min_num = (top - window) * 2 - max_num
    return (max_num, min_num) if n >= max_num >= min_num >= window else None


def fits(n: int, ratio: float, window: int = WINDOW, beta: int = BETA) -> bool:
    """False where the smallest layer's budget would fall below the window (n·(1 − r)/β < window): then
    PyramidKV is SnapKV with a uniform budget, in kvpress and here."""
    return _pyramid(n, ratio, window, beta) is not None


def layer_budget(n: int, ratio: float, layer: int, layers: int, window: int = WINDOW, beta: int = BETA) -> int:
    pyramid = _pyramid(n, ratio, window, beta)
    if pyramid is None:
        return round(n * (1 - ratio))
    max_num, min_num = pyramid
    steps = (max_num - min_num) / (layers - 1) if layers > 1 else 0.0
    return round(max_num - layer * steps)


def protected(settings) -> int:
    return WINDOW
