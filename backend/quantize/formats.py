"""KV formats by name: one codec for keys and one for values, and the bytes a token takes.

    f16, bf16                         16-bit storage (cast.py)
    q8_0 q5_1 q5_0 q4_1 q4_0          llama.cpp's blocks of 32 along head_dim (gguf_blocks.py)
    int8 int4 int2                    per token, groups of 32 along head_dim, fp16 scale + min (integer.py)
    int4-channel, int2-channel-g64    per channel, groups of G tokens (default 128) that wait in full precision
    kivi-2, kivi-4, kivi-2-r64        KIVI: keys per channel, values per token (groups of 32), and the last
                                      R (default 128) tokens in full precision: a block of R is quantized once full
    fp8-e4m3, fp8-e5m2 (+ "-head")    fp8 with a per-tensor (or per-KV-head) scale (fp8.py)
    any of these + "-rot"             the format taken after a Hadamard rotation of each head, as llama.cpp
                                      does by default for a quantized cache (rotated.py), e.g. q4_0-rot

transformers' QuantizedCache with the quanto backend is not offered: optimum-quanto is not a dependency here (it
is not installed, and it builds its kernels at run time); KIVI and int-k cover its 2/4-bit per-channel arrangement.
"""
import re
from dataclasses import dataclass

from ..errors import UserError
from .cast import Cast
from .fp8 import Fp8
from .gguf_blocks import GgufBlocks
from .integer import Integer
from .rotated import Rotated

GGUF = ("q8_0", "q5_1", "q5_0", "q4_1", "q4_0")
KIVI_RESIDUAL = 128
GROUP = 32
EXAMPLES = ("f16", "bf16", *GGUF, "int8", "int4", "int2", "int4-channel", "kivi-2", "kivi-4",
            "fp8-e4m3", "fp8-e5m2", "fp8-e4m3-head", "q8_0-rot", "q4_0-rot")


@dataclass(frozen=True)
class Side:
    """How one of K or V is stored: its codec, and how many newest tokens wait in full precision (a block of
    `residual` is quantized together once complete; 0: each token as it enters)."""
    codec: object
    residual: int = 0


@dataclass(frozen=True)
class KVFormat:
    name: str
    key: Side
    value: Side
    key_name: str = ""  # each side's own name: kv_format(None, key_name, value_name) builds it again
    value_name: str = ""

    def settings(self) -> dict:
        """JSON-able, enough to rebuild it (a sweep's cell, a worker process)."""
        return {"kv_format": self.name, "kv_format_k": self.key_name, "kv_format_v": self.value_name}

    def bits(self) -> tuple[float, float]:
        return self.key.codec.bits, self.value.codec.bits

    def bytes_per_token(self, layers: int, kv_heads: int, head_dim: int) -> float:
        """K and V of one token over every layer and KV head, scales included (the full-precision residual
        and intact sinks are a constant number of tokens, not counted here)."""
        return layers * kv_heads * head_dim * (self.key.codec.bits + self.value.codec.bits) / 8

    def check(self, head_dim: int) -> None:
        try:
            self.key.codec.check(head_dim)
            self.value.codec.check(head_dim)
        except ValueError as exc:
            raise UserError("bad_input", str(exc), "kv_format") from None


def _side(name: str, for_keys: bool) -> Side:
    """One of K or V from a format name."""
    if name.endswith("-rot") and name[:-4] not in ("f16", "bf16"):
        inner = _side(name[:-4], for_keys)
        return Side(Rotated(inner.codec), inner.residual)
    if name in ("f16", "bf16"):
        return Side(Cast(name))
    if name in GGUF:
        return Side(GgufBlocks(name))
    if m := re.fullmatch(r"int(8|4|2)(?:-(token|channel))?(?:-g(\d+))?", name):
        axis = m[2] or "token"
        group = int(m[3]) if m[3] else (GROUP if axis == "token" else KIVI_RESIDUAL)
        if group < 1:
            raise ValueError
        codec = Integer(int(m[1]), group, axis)
        return Side(codec, codec.block_tokens)
    if m := re.fullmatch(r"kivi-(4|2)(?:-r(\d+))?", name):
        residual = int(m[2]) if m[2] else KIVI_RESIDUAL
        if residual < 1:
            raise ValueError
        codec = Integer(int(m[1]), residual, "channel") if for_keys else Integer(int(m[1]), GROUP, "token")
        return Side(codec, residual)
    if m := re.fullmatch(r"fp8-(e4m3|e5m2)(-head)?", name):
        return Side(Fp8(m[1], "head" if m[2] else "tensor"))
    raise ValueError


def kv_format(name: str | None, key: str | None = None, value: str | None = None) -> KVFormat | None:
    """The format `name` for K and V, or `key`/`value` for each (either overrides `name`); None: no quantization."""
    key, value = key or name, value or name
    if not key and not value:
        return None
    key, value = key or "f16", value or "f16"
    if not isinstance(key, str) or not isinstance(value, str):
        raise UserError("bad_input", f"a KV format is a name such as {', '.join(EXAMPLES[:6])}.", "kv_format")
    sides = []
    key, value = key.strip().lower(), value.strip().lower()
    for given, for_keys in ((key, True), (value, False)):
        try:
            sides.append(_side(given, for_keys))
        except (ValueError, AttributeError):
            raise UserError("bad_input", f"unknown KV format {given!r}: use one of {', '.join(EXAMPLES)} "
                            "(or int8/4/2 with -token/-channel and -gN, kivi-2/-4 with -rN).", "kv_format") from None
    label = key if key == value else f"K {key} / V {value}"
    return KVFormat(label, *sides, key, value)


def offered() -> list[dict]:
    """The formats the UI's selects list (the Api's kv_formats): name and bits per value (K, V), scales included."""
    out = []
    for name in EXAMPLES:
        fmt = kv_format(name)
        out.append({"name": name, "bits": list(fmt.bits())})
    return out


def kv_bytes(loaded, fmt: KVFormat | None) -> dict:
    """What a result says about its cache: the format's name, bits per value (K, V) and bytes per token
    (None: the model's own dtype, unquantized)."""
    spec = loaded.spec
    shape = (spec["layers"], spec["kv_heads"], spec["head_dim"])
    if fmt is None:
        import torch

        bits = torch.finfo(next(loaded.model.parameters()).dtype).bits
        return {"kv_format": None, "kv_bits": [bits, bits], "bytes_per_token": shape[0] * shape[1] * shape[2] * bits / 4}
    return {"kv_format": fmt.name, "kv_bits": list(fmt.bits()), "bytes_per_token": fmt.bytes_per_token(*shape)}
