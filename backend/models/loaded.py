"""A model that finished loading: everything the other services need from it."""
from dataclasses import dataclass


@dataclass
class LoadedModel:
    model: object          # transformers PreTrainedModel (causal LM), eval mode, attention through seam.py
    tokenizer: object      # transformers tokenizer
    source: str            # "demo", a folder, or a Hub id
    device: str            # "cpu" | "cuda" | "mps"
    dtype: str             # "float32" | "float16" | "bfloat16"
    spec: dict             # layers, heads, kv_heads, hidden_size, head_dim, vocab_size, context_length,
                           # parameters, weights_bytes, kv_bytes_per_token, model_type, position_scheme

    def __post_init__(self):
        from ..attention.seam import install

        install(self.model)  # every view takes attention at the model's own attention function

    @property
    def context_length(self) -> int:
        return int(self.spec["context_length"])
