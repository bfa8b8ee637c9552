"""Integer k-bit (8/4/2) asymmetric quantization in groups, per token or per channel (KIVI's building block).

A group of values shares an fp16 scale and an fp16 minimum: q = round((x − min) / scale), x̂ = min + q·scale,
scale = (max − min) / (2^k − 1). Per token: groups of `group` values along head_dim, each token on its own, so a
token is quantized as it enters. Per channel: one group per channel over a block of `group` tokens, so tokens wait
in full precision until `group` of them have arrived (the cache layer's residual, layer.py), then go together.
"""
from dataclasses import dataclass

SCALE_BITS = 32  # an fp16 scale and an fp16 minimum per group


def _fp16(t):
    return t.to(__import__("torch").float16).float()


@dataclass(frozen=True)
class Integer:
    nbits: int  # 8, 4 or 2
    group: int  # values per group: along head_dim (per token) or tokens per block (per channel)
    axis: str  # "token" or "channel"

    @property
    def name(self) -> str:
        return f"int{self.nbits}-{self.axis}-g{self.group}"

    @property
    def stateless(self) -> bool:  # per token: no calibration, so K and V can go through one call
        return self.axis == "token"

    @property
    def block_tokens(self) -> int:
        return self.group if self.axis == "channel" else 0

    @property
    def bits(self) -> float:
        return self.nbits + SCALE_BITS / self.group

    def check(self, head_dim: int) -> None:
        if self.axis == "token" and head_dim % self.group:
            raise ValueError(f"{self.name} groups {self.group} values along head_dim, which is {head_dim} here: "
                             f"use a group that divides {head_dim}.")

    def roundtrip(self, x, state: dict, pending=None):
        """x [B, H, T, d]. Per channel: the statistics are over the entries where `pending` [B, H, T] is True
        (the block being quantized; others are returned unchanged)."""
        import torch

        xf = x.float()
        if self.axis == "token":
            g = xf.reshape(*x.shape[:-1], x.shape[-1] // self.group, self.group)
            lo, hi = g.amin(-1, keepdim=True), g.amax(-1, keepdim=True)
            return _dequant(g, lo, hi, self.nbits).reshape(x.shape).to(x.dtype)
        inside = pending[..., None]
        lo = torch.where(inside, xf, torch.inf).amin(-2, keepdim=True)
        hi = torch.where(inside, xf, -torch.inf).amax(-2, keepdim=True)
        lo, hi = torch.where(torch.isfinite(lo), lo, 0.0), torch.where(torch.isfinite(hi), hi, 0.0)
        return torch.where(inside, _dequant(xf, lo, hi, self.nbits), xf).to(x.dtype)


def _dequant(x, lo, hi, nbits):
    import torch

    levels = 2 ** nbits - 1
    lo = _fp16(lo)
    scale = _fp16((hi - lo) / levels)
    safe = torch.where(scale > 0, scale, 1.0)
    q = torch.clamp(torch.round((x - lo) / safe), 0, levels)
    return lo + q * scale
