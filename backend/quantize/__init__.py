"""Quantized KV caches: every token kept, each stored in fewer bits (issue 34).

    kv_format(name, key=None, value=None) -> KVFormat | None    formats.py: names, codecs, bytes per token
    layer.QuantizedKVCache(kv_format, intact=0)                 layer.py: a DynamicCache that quantizes on insert

Evaluate (both protocols) and Retrieval build their caches as QuantizedKVCache when a format is given, so a
format composes with every eviction policy and prefill method: eviction drops entries, the kept ones stay as
they were stored. (layer.py imports transformers; this package's names do not.)
"""
from .formats import EXAMPLES, KVFormat, kv_bytes, kv_format

__all__ = ["EXAMPLES", "KVFormat", "kv_bytes", "kv_format"]
