"""LRU as a rule file: a key's score is the step of its last access (attention ≥ τ, or
entering); the least recently accessed key goes. Equals the built-in LRU bit for bit."""
NAME = "lru_rule"
LABEL = "LRU (rule file)"
PROTECT_FIRST = 0
PROTECT_RECENT = 0


def on_enter(t, run):
    return t


def on_attention(score, attention, age, t, run):
    return t if attention >= run.tau else score
