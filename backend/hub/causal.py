"""Is a transformers config a causal (decoder-only) language model? SinkVis needs one."""
from pathlib import Path

from ..safe_read import FileRefused, read_json

# Decoder-only model types whose configs sometimes lack an `architectures` list.
KNOWN_DECODERS = frozenset({
    "gpt2", "gpt_neo", "gpt_neox", "gptj", "gpt_bigcode", "llama", "mistral", "mixtral", "qwen2", "qwen2_moe",
    "qwen3", "qwen3_moe", "phi", "phi3", "gemma", "gemma2", "gemma3_text", "opt", "bloom", "falcon", "mpt",
    "stablelm", "olmo", "olmo2", "smollm3", "codegen", "starcoder2", "cohere", "granite", "deepseek_v2",
    "deepseek_v3", "internlm2", "baichuan", "rwkv", "mamba", "xglm", "ctrl", "transfo-xl", "openai-gpt",
})
_CAUSAL_SUFFIXES = ("ForCausalLM", "LMHeadModel")


def is_causal_config(config: dict) -> bool:
    archs = config.get("architectures") or []
    if isinstance(archs, list) and any(isinstance(a, str) and a.endswith(_CAUSAL_SUFFIXES) for a in archs):
        return True
    return config.get("model_type") in KNOWN_DECODERS


def describe_architecture(config: dict) -> str:
    archs = config.get("architectures")
    if isinstance(archs, list) and archs:
        return ", ".join(str(a) for a in archs[:3])
    return str(config.get("model_type") or "unknown")


def read_config(folder: Path) -> dict | None:
    """config.json as a dict, or None when it is missing, not a regular file, too big or not a JSON object.
    Read through safe_read: a config.json linked to /dev/zero must not grow memory until the OOM killer."""
    try:
        config = read_json(Path(folder) / "config.json", "config")
    except FileRefused:
        return None
    return config if isinstance(config, dict) else None
