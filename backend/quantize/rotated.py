"""A format applied after a Hadamard rotation of each head (`q4_0-rot`, any format + `-rot`): what llama.cpp does by
default when its cache is quantized (PR #21038, 2026: queries, keys and values are multiplied by an orthonormal
Hadamard matrix before the cache, and the attention output by it again after).

Attention is unchanged by the rotation itself — (qH)·(kH) = q·k, and Σ p·(vH) rotated back is Σ p·v — so the
cache can hold H⁻¹·Q(x·H) = Q(x·H)·H: what attention reads differs from x only by the format's error, taken
in the rotated basis, where an outlier channel is spread over the whole block instead of setting one block's
scale. H is Sylvester's ±1 matrix over the largest power-of-two block that divides head_dim, divided by √n.
"""
import math
from dataclasses import dataclass, field


def hadamard(n: int):
    """Sylvester's n × n Hadamard matrix (n a power of two), normalised: orthonormal and its own inverse."""
    import torch

    h = torch.ones(1, 1, dtype=torch.float64)
    while h.shape[0] < n:
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
    return h / math.sqrt(n)


def block_size(head_dim: int) -> int:
    """The largest power of two dividing head_dim (the whole head when head_dim is one)."""
    return head_dim & -head_dim


@dataclass(frozen=True)
class Rotated:
    inner: object  # the codec applied in the rotated basis
    matrices: dict = field(default_factory=dict, compare=False, hash=False)  # (n, dtype, device) → H

    def __getattr__(self, name):  # bits, block_tokens, stateless, name of the wrapped codec
        if name in ("inner", "matrices"):
            raise AttributeError(name)
        return getattr(self.inner, name)

    def check(self, head_dim: int) -> None:
        self.inner.check(head_dim)

    def _matrix(self, x):
        n = block_size(x.shape[-1])
        key = (n, x.dtype, str(x.device))
        if key not in self.matrices:
            self.matrices[key] = hadamard(n).to(x.device, x.dtype)
        return self.matrices[key]

    def _turn(self, x, h):
        blocks = x.reshape(*x.shape[:-1], x.shape[-1] // h.shape[0], h.shape[0])
        return (blocks @ h).reshape(x.shape)

    def roundtrip(self, x, state: dict, pending=None):
        h = self._matrix(x)
        return self._turn(self.inner.roundtrip(self._turn(x, h).contiguous(), state, pending), h)
