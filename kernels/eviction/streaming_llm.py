"""StreamingLLM (Xiao et al. 2023): the first S keys (attention sinks) + the C − S most recent.

The victim is the oldest key that is not one of the first S; the walk from the oldest
end skips at most S keys.
"""
from numba import njit

from .state import HEAD, NEXT, POS


@njit(cache=True)
def victim(slots, ctr, sinks):
    s = ctr[HEAD]
    while slots[s, POS] < sinks:
        s = slots[s, NEXT]
    return s
