"""llama.cpp's KV block formats (`--cache-type-k/-v`): q8_0, q5_1, q5_0, q4_1, q4_0.

Each row of 32 values along head_dim becomes one block: an fp16 scale (and an fp16 minimum for
the _1 formats), then 8, 5 or 4 bits per value. The arithmetic is the `gguf` package's reference
(gguf.quants, bit-exact with ggml-quants.c), run once over a whole layer's new entries: the
[batch, heads, tokens, head_dim] tensor is viewed as rows of 32, as llama.cpp lays its cache out.
"""
from dataclasses import dataclass

BLOCK = 32


@dataclass(frozen=True)
class GgufBlocks:
    name: str  # q8_0, q5_1, q5_0, q4_1, q4_0
    block_tokens: int = 0  # each token is quantized as it enters (its blocks lie within its own row)
    stateless = True  # no calibration: K and V can go through one call

    @property
    def qtype(self):
        from gguf import GGMLQuantizationType

        return GGMLQuantizationType[self.name.upper()]

    @property
    def bits(self) -> float:
        """Bits per value including the block's fp16 scale (and minimum): the layout's bytes × 8 / 32."""
        from gguf import GGML_QUANT_SIZES

        block, type_size = GGML_QUANT_SIZES[self.qtype]
        return type_size * 8 / block

    def check(self, head_dim: int) -> None:
        if head_dim % BLOCK:
            raise ValueError(f"{self.name} stores blocks of {BLOCK} values along head_dim, and this model's head_dim "
                             f"is {head_dim}: pick an integer or fp8 format.")

    def encode(self, x):
        """The bytes llama.cpp would store: uint8 [..., head_dim / 32 × type size] (numpy)."""
        from gguf import quants

        return quants.quantize(x.detach().float().cpu().numpy(), self.qtype)

    def decode(self, blocks, like):
        import torch
        from gguf import quants

        return torch.from_numpy(quants.dequantize(blocks, self.qtype)).to(like.device, like.dtype)

    def roundtrip(self, x, state: dict, pending=None):
        """Quantize then dequantize: what attention reads back from the cache."""
        return self.decode(self.encode(x), x)
