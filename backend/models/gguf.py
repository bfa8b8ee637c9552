"""Read a GGUF file's header: what it is, without reading (or dequantizing) its tensors.

A GGUF file is: magic "GGUF", version, tensor count, metadata key/values (the model's
config and its whole tokenizer vocabulary), a tensor table (name, shape, type, offset),
then the tensor data. The Local list and the model card need only the first three
parts, so this parser reads just those, piece by piece:

- the file must be a regular file (backend/safe_read.open_regular: no FIFO, device or folder);
- at most LIMITS["gguf_header"] bytes are read (256 MiB; SmolLM2's header is 1.6 MB,
  a 150k-token vocabulary with merges ~8 MB), and every count and string length is
  checked against what is left of that budget before anything is allocated, so a
  corrupt or hostile file fails fast with a named error instead of eating memory;
- vocabulary arrays are skipped (only their length is kept): listing a folder of
  GGUF files costs milliseconds each.

Errors are UserError("bad_gguf", ...) naming the file and what is wrong with it.
"""
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from ..safe_read import LIMITS, open_regular

MAGIC = b"GGUF"
_CHUNK = 1 << 20
_MAX_TENSORS = 1 << 20        # llama-405B has ~1,100 tensors; a million is corruption
_MAX_DIMS = 8                 # ggml tensors have at most 4 dimensions

# metadata value types (gguf spec): fixed-size scalars by struct format; 8 = string, 9 = array
_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
_KEEP_ARRAY = 64              # arrays longer than this are skipped, their length kept (vocabularies)

# ggml tensor types → name (gguf.GGMLQuantizationType, copied so listing needs no numpy import)
GGML_TYPES = {0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 9: "Q8_1", 10: "Q2_K",
              11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K", 16: "IQ2_XXS", 17: "IQ2_XS",
              18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS", 24: "I8",
              25: "I16", 26: "I32", 27: "I64", 28: "F64", 29: "IQ1_M", 30: "BF16", 34: "TQ1_0", 35: "TQ2_0",
              39: "MXFP4"}
# general.file_type (llama.cpp's LlamaFileType) → the label people know the file by
FILE_TYPES = {0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
              11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
              17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS",
              23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S", 29: "IQ2_M",
              30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0", 37: "TQ2_0", 38: "MXFP4_MOE"}


@dataclass
class GgufHeader:
    path: str
    version: int
    metadata: dict                       # scalars and short arrays; long arrays as {"array_length": n}
    tensors: list = field(repr=False)    # [(name, shape, ggml type name, ggml type id, offset in the data section)]
    size_bytes: int = 0
    data_start: int = 0                  # where the tensor data begins (after the aligned header)

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", "?"))

    def arch_value(self, key: str, default=None):
        return self.metadata.get(f"{self.architecture}.{key}", default)

    @property
    def parameters(self) -> int:
        total = 0
        for _, shape, *_ in self.tensors:
            n = 1
            for d in shape:
                n *= d
            total += n
        return total

    @property
    def quantization(self) -> str:
        """The file's quantization: general.file_type when written, else the type holding most weights."""
        file_type = self.metadata.get("general.file_type")
        if isinstance(file_type, int) and file_type in FILE_TYPES:
            return FILE_TYPES[file_type]
        by_type: dict[str, int] = {}
        for _, shape, kind, *_ in self.tensors:
            if len(shape) >= 2:
                n = 1
                for d in shape:
                    n *= d
                by_type[kind] = by_type.get(kind, 0) + n
        return max(by_type, key=by_type.get) if by_type else "?"

    def check_complete(self) -> None:
        """Raise bad_gguf when the tensor data the table points at runs past the end of the file (a cut download)."""
        from gguf import GGML_QUANT_SIZES, GGMLQuantizationType  # imports numpy: only when loading

        end = 0
        for name, shape, kind, kind_id, offset in self.tensors:
            try:
                block, block_bytes = GGML_QUANT_SIZES[GGMLQuantizationType(kind_id)]
            except (ValueError, KeyError):
                raise UserError("bad_gguf", f"{Path(self.path).name}: tensor {name[:60]!r} has an unknown type "
                                f"({kind}); it may need a newer gguf package.", "source") from None
            n = 1
            for d in shape:
                n *= d
            end = max(end, offset + n // block * block_bytes)
        if self.data_start + end > self.size_bytes:
            raise UserError("bad_gguf", f"{Path(self.path).name} is truncated: its tensors need "
                            f"{self.data_start + end:,} bytes but the file has {self.size_bytes:,}. Re-download it.", "source")

    def summary(self) -> dict:
        """What the Local list and the card show: read off the header only."""
        heads = self.arch_value("attention.head_count")
        hidden = self.arch_value("embedding_length")
        head_dim = self.arch_value("attention.key_length") or (hidden // heads if hidden and heads else None)
        tokens = self.metadata.get("tokenizer.ggml.tokens")
        vocab = self.arch_value("vocab_size") or (tokens.get("array_length") if isinstance(tokens, dict) else None)
        return {
            "name": str(self.metadata.get("general.name") or Path(self.path).stem),
            "architecture": self.architecture,
            "quantization": self.quantization,
            "parameters": self.parameters,
            "size_bytes": self.size_bytes,
            "context_length": self.arch_value("context_length"),
            "layers": self.arch_value("block_count"),
            "heads": heads,
            "kv_heads": self.arch_value("attention.head_count_kv", heads),
            "head_dim": head_dim,
            "hidden_size": hidden,
            "vocab_size": vocab,
        }


class _Bounded:
    """Sequential reads from a file with a hard cap (`limit`, an absolute offset) on the bytes consumed."""

    def __init__(self, f, path: Path, limit: int):
        self.f, self.path, self.limit = f, path, limit
        self.buf, self.pos, self.base = b"", 0, 0   # buf holds file bytes [base, base + len(buf)); pos indexes it

    @property
    def offset(self) -> int:
        return self.base + self.pos

    def bad(self, why: str) -> UserError:
        return UserError("bad_gguf", f"{self.path.name} is not a readable GGUF file: {why} (offset {self.offset:,}). "
                         "Re-download it, or pick another file.", "source")

    def _within(self, n: int) -> None:
        if n < 0 or self.offset + n > self.limit:
            raise self.bad("its header runs past the end of the file (truncated?)" if self.limit < LIMITS["gguf_header"]
                           else f"its header runs past the {LIMITS['gguf_header'] // 2**20} MiB SinkVis reads")

    def take(self, n: int) -> bytes:
        self._within(n)
        if len(self.buf) < self.pos + n:  # refill: drop what was read, then read at least a chunk
            self.buf, self.base, self.pos = self.buf[self.pos:], self.offset, 0
            while len(self.buf) < n:
                more = self.f.read(max(_CHUNK, n - len(self.buf)))
                if not more:
                    raise self.bad("the file ends inside its header (truncated?)")
                self.buf += more
        out = self.buf[self.pos: self.pos + n]
        self.pos += n
        return out

    def skip(self, n: int) -> None:
        self._within(n)
        if self.pos + n <= len(self.buf):
            self.pos += n
            return
        self.f.seek(self.pos + n - len(self.buf), 1)  # the file is at base + len(buf)
        self.buf, self.base, self.pos = b"", self.offset + n, 0

    def unpack(self, fmt: str):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def count(self, what: str, per_item: int) -> int:
        """A u64 count of items at least per_item bytes each, checked against the bytes left."""
        n = self.unpack("<Q")
        if n * per_item > self.limit - self.offset:
            raise self.bad(f"{what} claims {n:,} items, more than the rest of the file holds (truncated or corrupt)")
        return n

    def string(self) -> str:
        raw = self.take(self.count("a string", 1))
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise self.bad("a text field is not UTF-8") from None


def _value(r: _Bounded, kind: int):
    if kind in _SCALAR:
        return r.unpack(_SCALAR[kind])
    if kind == _STRING:
        return r.string()
    if kind != _ARRAY:
        raise r.bad(f"unknown metadata value type {kind}")
    item = r.unpack("<I")
    if item not in _SCALAR and item not in (_STRING, _ARRAY):
        raise r.bad(f"unknown array item type {item}")
    width = struct.calcsize(_SCALAR[item]) if item in _SCALAR else 8  # a string or array is at least its u64 length
    n = r.count("an array", width)
    if n <= _KEEP_ARRAY and item != _ARRAY:
        return [_value(r, item) for _ in range(n)]
    if item in _SCALAR:  # a vocabulary's scores or types: skip them, keep the length
        r.skip(width * n)
    elif item == _STRING:  # the vocabulary itself, the merges
        for _ in range(n):
            r.skip(r.count("a string", 1))
    else:
        for _ in range(n):
            _value(r, _ARRAY)
    return {"array_length": n}


def read_header(path) -> GgufHeader:
    """Parse a .gguf file's metadata and tensor table. Raises UserError(bad_gguf) or FileRefused(bad_file)."""
    path = Path(path)
    with open_regular(path, "weights") as f:
        size = os.fstat(f.fileno()).st_size
        r = _Bounded(f, path, min(size, LIMITS["gguf_header"]))
        if size < 4 or r.take(4) != MAGIC:
            raise UserError("bad_gguf", f"{path.name} is not a GGUF file (it does not start with 'GGUF').", "source")
        version = r.unpack("<I")
        if version not in (2, 3):
            raise r.bad(f"GGUF version {version} (SinkVis reads versions 2 and 3)")
        n_tensors = r.count("the tensor table", 24)
        if n_tensors > _MAX_TENSORS:
            raise r.bad(f"{n_tensors:,} tensors")
        n_kv = r.count("the metadata", 12)
        metadata = {}
        for _ in range(n_kv):
            key = r.string()
            metadata[key] = _value(r, r.unpack("<I"))
        tensors = []
        for _ in range(n_tensors):
            name = r.string()
            n_dims = r.unpack("<I")
            if n_dims > _MAX_DIMS:
                raise r.bad(f"tensor {name[:60]!r} has {n_dims} dimensions")
            shape = [r.unpack("<Q") for _ in range(n_dims)]
            kind = r.unpack("<I")
            offset = r.unpack("<Q")
            tensors.append((name, shape, GGML_TYPES.get(kind, f"type{kind}"), kind, offset))
        alignment = metadata.get("general.alignment", 32)
        if not isinstance(alignment, int) or alignment <= 0:
            raise r.bad(f"general.alignment is {alignment!r}")
        data_start = -(-r.offset // alignment) * alignment
    if "general.architecture" not in metadata:
        raise UserError("bad_gguf", f"{path.name} has no general.architecture in its header; it is not a model GGUF.", "source")
    return GgufHeader(str(path), version, metadata, tensors, size, data_start)


# ---- what transformers can load ----------------------------------------------------------------
# llama.cpp spells some architectures differently from transformers (transformers maps them on load).
_ALIASES = {"qwen2moe": "qwen2_moe", "qwen3moe": "qwen3_moe", "gpt-oss": "gpt_oss", "minimax-m2": "minimax_m2"}
_NOT_DECODERS = {"general", "tokenizer", "t5", "umt5", "t5encoder", "mamba"}  # no causal attention to show


def supported_architectures() -> list[str]:
    """The GGUF architectures installed transformers turns into a causal LM with attention (imports transformers)."""
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    names = set(GGUF_SUPPORTED_ARCHITECTURES)
    try:  # transformers ≥ 5.2x also rebuilds some configs from metadata alone
        from transformers.integrations.gguf import GGUF_CONFIG_ARCHS

        names |= set(GGUF_CONFIG_ARCHS)
    except ImportError:
        pass
    return sorted(names - _NOT_DECODERS)


def check_supported(header: GgufHeader) -> None:
    arch = header.architecture
    supported = supported_architectures()
    if arch not in supported and _ALIASES.get(arch) not in supported:
        raise UserError("unsupported_gguf", f"{Path(header.path).name} is a '{arch}' model; transformers cannot load that "
                        f"architecture from GGUF. Supported: {', '.join(supported)}.", "source")
