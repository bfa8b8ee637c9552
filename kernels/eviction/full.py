"""Full Cache: keeps every key and ignores C. The baseline: no evictions, recall 1.

Nothing to decide, so no state: the loop marks each key cached (one shared dummy slot)
and never calls a victim function.
"""
EVICTS = False
