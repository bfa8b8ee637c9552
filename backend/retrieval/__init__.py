"""Retrieval under eviction: does the model still find a fact in its context once a policy has
evicted part of it? Pass-key and needle tasks on a grid of context lengths × needle depths, in
two protocols (streaming: decode-time eviction on Evaluate's real caches; prefill: kvpress's
compress-once, backend/compress), with "why it missed" (needle tokens still cached per layer
and KV head, attention the first answer token pays to the needle).
"""
