"""Cache profile: KV blocks of a sequence → tier simulator (kernels/tiers.py) → block map and costs.

kv_bytes.py  bytes per token from a model config (right for grouped-query attention)
presets.py   the four tiers: "detected" (this machine) and "constrained" (all four fill)
service.py   validate a request, run the simulator in chunks with progress, shape the result
"""
