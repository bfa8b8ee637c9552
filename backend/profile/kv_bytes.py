"""KV-cache bytes per token = 2 (K and V) × layers × KV heads × head dim × bytes per element.

The config reading (n_layer vs num_hidden_layers, num_key_value_heads, head_dim or
hidden / heads) is backend.models.spec's, so the Model Hub and the profile agree.
"""
from types import SimpleNamespace

from ..models.spec import config_spec, kv_bytes_per_token

BYTES_PER_ELEMENT = {"float32": 4, "float16": 2, "bfloat16": 2, "float8": 1}

# Without a loaded model the profile sizes blocks like GPT-2 small (124M) in fp16: a
# real, familiar model, not the tiny demo model whose KV would fit anywhere.
GPT2_SMALL = SimpleNamespace(model_type="gpt2", n_layer=12, n_head=12, n_embd=768, n_positions=1024, vocab_size=50257)
DEFAULT_SOURCE = "GPT-2 small (12 layers, 12 heads × 64, fp16): no model loaded"


def bytes_per_token(config, dtype: str = "float16") -> int:
    return kv_bytes_per_token(config_spec(config), BYTES_PER_ELEMENT[dtype])


def weights_bytes(loaded) -> int:
    """HBM the loaded model's weights occupy (0 without a model: the profile then sizes KV alone)."""
    return int(loaded.spec.get("weights_bytes") or 0) if loaded is not None else 0


def for_loaded(loaded) -> tuple[int, str]:
    """(bytes per token, where it came from) for the loaded model, or the GPT-2 small default."""
    if loaded is None:
        return bytes_per_token(GPT2_SMALL, "float16"), DEFAULT_SOURCE
    value = loaded.spec.get("kv_bytes_per_token") or bytes_per_token(loaded.model.config, loaded.dtype)
    return int(value), f"the loaded model ({loaded.source}, {loaded.dtype})"


def for_format(loaded, kv_format) -> tuple[int, str]:
    """(bytes per token, where it came from) with the KV stored in a quantized format (backend/quantize: scales
    included, rounded up to a whole byte), for the loaded model or the GPT-2 small default."""
    import math

    spec = loaded.spec if loaded is not None else config_spec(GPT2_SMALL)
    value = kv_format.bytes_per_token(spec["layers"], spec["kv_heads"], spec["head_dim"])
    model = f"the loaded model ({loaded.source})" if loaded is not None else "GPT-2 small (no model loaded)"
    return math.ceil(value), f"{model} with its KV in {kv_format.name}"
