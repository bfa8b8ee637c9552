"""fp8 E4M3 / E5M2 with a per-tensor or per-head scale (vLLM's kv_cache_dtype="fp8", its two scale modes).

The scale is calibrated once, on a layer's first insert (amax / the format's largest finite value, as
transformers' Fp8QuantizedLayer and vLLM's calculate_kv_scales do), then frozen, so later tokens are
appended without touching the others. Per head: one scale per KV head.
"""
from dataclasses import dataclass

DTYPES = {"e4m3": "float8_e4m3fn", "e5m2": "float8_e5m2"}


@dataclass(frozen=True)
class Fp8:
    kind: str  # e4m3 or e5m2
    scale: str  # "tensor" or "head"
    block_tokens: int = 0

    @property
    def name(self) -> str:
        return f"fp8-{self.kind}" + ("-head" if self.scale == "head" else "")

    @property
    def bits(self) -> float:
        return 8.0  # one fp32 scale per layer (or KV head): nothing per token

    def check(self, head_dim: int) -> None:
        pass

    def roundtrip(self, x, state: dict, pending=None):
        import torch

        dtype = getattr(torch, DTYPES[self.kind])
        if "scale" not in state:
            dims = (0, 1, 2, 3) if self.scale == "tensor" else (0, 2, 3)
            amax = x.detach().abs().float().amax(dim=dims, keepdim=True)
            state["scale"] = (amax / torch.finfo(dtype).max).clamp(min=torch.finfo(torch.float32).tiny)
        scale, top = state["scale"], torch.finfo(dtype).max
        # saturate, as vLLM's fp8 kernels do: a later token louder than the calibration would otherwise become NaN
        return ((x.float() / scale).clamp(-top, top).to(dtype).float() * scale).to(x.dtype)
