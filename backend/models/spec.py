"""A model's shape, read off its config: what the Model Hub shows and the KV maths uses."""


def _first(config, *names, default=None):
    for name in names:
        value = getattr(config, name, None)
        if value is not None:
            return value
    return default


def config_spec(config) -> dict:
    """Layers, heads, KV heads, widths and KV-cache bytes per token (at the given element size)."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    layers = int(_first(text, "num_hidden_layers", "n_layer", "num_layers", default=0))
    heads = int(_first(text, "num_attention_heads", "n_head", "num_heads", default=0))
    kv_heads = int(_first(text, "num_key_value_heads", "multi_query_group_num", default=heads) or heads)
    hidden = int(_first(text, "hidden_size", "n_embd", "d_model", default=0))
    head_dim = int(_first(text, "head_dim", default=hidden // heads if heads else 0) or (hidden // heads))
    context = int(_first(text, "max_position_embeddings", "n_positions", "n_ctx", "seq_length", default=2048))
    # transformers 5 keeps rotary settings in rope_parameters; older configs in rope_theta
    rotary = any(getattr(text, name, None) is not None for name in ("rope_parameters", "rope_theta", "rope_scaling")) \
        or "rope" in str(getattr(text, "position_embedding_type", ""))
    learned = getattr(text, "n_positions", None) is not None or getattr(text, "model_type", "") in ("gpt2", "opt", "gpt_neo")
    return {
        "model_type": getattr(text, "model_type", "unknown"),
        "layers": layers,
        "heads": heads,
        "kv_heads": kv_heads,
        "hidden_size": hidden,
        "head_dim": head_dim,
        "vocab_size": int(_first(text, "vocab_size", default=0)),
        "context_length": context,
        "position_scheme": "rotary" if rotary else ("learned_absolute" if learned else "other"),
    }


def kv_bytes_per_token(spec: dict, bytes_per_element: int) -> int:
    """2 (K and V) × layers × KV heads × head dim × bytes per element."""
    return 2 * spec["layers"] * spec["kv_heads"] * spec["head_dim"] * bytes_per_element
