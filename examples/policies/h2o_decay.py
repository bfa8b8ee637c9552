"""H2O with a decay: old attention counts less, so a key that was heavy long ago can go."""
NAME = "h2o_decay"
LABEL = "H2O, decay 0.99"
PROTECT_FIRST = "sinks"     # the first S keys always stay (an int, "sinks" or 0)
PROTECT_RECENT = "window"   # so do the W most recent (an int, "window" or 0)
DECAY = 0.99


def on_enter(t, run):  # the score of key t as it enters the cache
    return 0.0


def on_attention(score, attention, age, t, run):  # every step, for every cached key
    return DECAY * score + attention
