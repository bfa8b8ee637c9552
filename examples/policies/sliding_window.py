"""Sliding Window as a rule file: the oldest key goes (every score is 0, and ties evict
the older key). Equals the built-in Sliding Window bit for bit."""
NAME = "sliding_window_rule"
LABEL = "Sliding Window (rule file)"
PROTECT_FIRST = 0
PROTECT_RECENT = 0


def on_enter(t, run):
    return 0.0
