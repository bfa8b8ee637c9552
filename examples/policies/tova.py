"""TOVA (Oren et al. 2024) as a rule file: the key the current query attends to least goes,
the new key included. Equals the built-in TOVA bit for bit."""
NAME = "tova_rule"
LABEL = "TOVA (rule file)"
PROTECT_FIRST = 0
PROTECT_RECENT = 0


def on_enter(t, run):
    return 0.0


def on_attention(score, attention, age, t, run):
    return attention
