"""H2O (Zhang et al. 2023) as a rule file: the W most recent keys stay; of the others, the
key with the least attention accumulated while cached goes. Equals the built-in H2O bit
for bit (attention is exact in fixed point, so the sums are too)."""
NAME = "h2o_rule"
LABEL = "H2O (rule file)"
PROTECT_FIRST = 0
PROTECT_RECENT = "window"


def on_enter(t, run):
    return 0.0


def on_attention(score, attention, age, t, run):
    return score + attention
