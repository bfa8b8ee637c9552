"""StreamingLLM (Xiao et al. 2023) as a rule file: the first S keys (the attention sinks)
stay; of the others the oldest goes (every score is 0, and ties evict the older key).
No on_attention: scores never change, and they come in order (all 0, the older first), so the
loop keeps the candidates in a FIFO as they enter. Equals the built-in StreamingLLM bit for bit."""
NAME = "streaming_llm_rule"
LABEL = "StreamingLLM (rule file)"
PROTECT_FIRST = "sinks"
PROTECT_RECENT = 0


def on_enter(t, run):
    return 0.0
