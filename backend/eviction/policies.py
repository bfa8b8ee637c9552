"""The eviction policies the app offers, in the order the UI lists them (labels: backend/labels.py)."""
from ..labels import LABELS as _ALL_LABELS

POLICIES = [
    {"name": "full", "needs_future": False,
     "description": "Keeps every key; ignores the budget. The baseline: no evictions, recall 1."},
    {"name": "sliding_window", "needs_future": False,
     "description": "Keeps the C most recent keys."},
    {"name": "streaming_llm", "needs_future": False,
     "description": "Keeps the first S keys (attention sinks) and the C − S most recent."},
    {"name": "h2o", "needs_future": False,
     "description": "Keeps the W most recent keys and the C − W with the most attention accumulated while cached."},
    {"name": "lru", "needs_future": False,
     "description": "Keeps the C keys accessed (attention ≥ τ) most recently; ties: the older key goes."},
    {"name": "tova", "needs_future": False,
     "description": "Evicts the key the current query attends to least (the new key included)."},
    {"name": "oracle", "needs_future": True,
     "description": "The most hits any policy can get at this budget: solved offline from the whole trace. "
                    "Model traces only."},
]
for _p in POLICIES:
    _p["label"] = _ALL_LABELS[_p["name"]]
NAMES = [p["name"] for p in POLICIES]
LABELS = {p["name"]: p["label"] for p in POLICIES}
NEEDS_FUTURE = {p["name"] for p in POLICIES if p["needs_future"]}
