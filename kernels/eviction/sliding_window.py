"""Sliding Window: keeps the C most recent keys, so the victim is always the oldest."""
from numba import njit

from .state import HEAD


@njit(cache=True)
def victim(slots, ctr):
    return ctr[HEAD]
