"""A 16-bit cache: every value stored as float16 or bfloat16 (llama.cpp's default `f16` cache type).

On a model that computes in the same 16-bit type it changes nothing, which makes it the check that the
quantized cache's machinery (layer.py, Evaluate's quantized pass) adds no error of its own.
"""
from dataclasses import dataclass


@dataclass(frozen=True)
class Cast:
    name: str  # f16 or bf16
    block_tokens: int = 0
    stateless = True  # no calibration: K and V can go through one call

    @property
    def bits(self) -> float:
        return 16.0

    def check(self, head_dim: int) -> None:
        pass

    def roundtrip(self, x, state: dict, pending=None):
        import torch

        return x.to(torch.float16 if self.name == "f16" else torch.bfloat16).to(x.dtype)
