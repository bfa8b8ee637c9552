"""One label and one colour per policy and prefill method, for every view (issue 33, item 4).

The UI reads this table once through the Api (`policy_labels`) and draws every legend, swatch,
chart line, grid title and export with it, so Sliding Window is "Sliding Window" in orange on
every tab, in the window and in the browser alike. A user's rule or prefill file shows its
LABEL (the file's `LABEL = ...`, else its name) and a colour derived from its name alone:
the same on every start and every front, and never one of the built-ins' colours.

The built-ins stay clear of the data colours (sink pink #ff4fa3, heavy-hitter blue #4aa3ff) and
the control accent (violet), so a policy line never reads as "sinks"; user colours also keep
MIN_DISTANCE from those. (Sliding Window's orange is near the disk tier's, which only the Cache
Profile draws, and it draws no eviction policy.)
"""
import colorsys
import hashlib

# name → (label, colour, dash). Dash: the reference dashed, the oracle dotted (a bound, not a policy).
BUILT_IN = {
    "full": ("Full Cache", "#e5e7eb", [5, 3]),
    "sliding_window": ("Sliding Window", "#ff9f43", []),
    "streaming_llm": ("StreamingLLM", "#2dd4bf", []),
    "h2o": ("H2O", "#f87171", []),
    "lru": ("LRU", "#a3e635", []),
    "tova": ("TOVA", "#e879f9", []),
    "quest": ("Quest", "#fdba74", []),
    "oracle": ("Oracle (optimal)", "#94a3b8", [2, 3]),
    "sliding_window_recompute": ("Sliding Window + re-computation", "#c2410c", [6, 2, 2, 2]),
    # compression at prefill (backend/compress/methods), kvpress's names
    "observed_attention": ("Observed attention", "#fda4af", []),
    "snapkv": ("SnapKV", "#0ea5e9", []),
    "pyramidkv": ("PyramidKV", "#6366f1", []),
    "adakv_snapkv": ("Ada-KV + SnapKV", "#7dd3fc", [4, 2]),
    "expected_attention": ("Expected Attention", "#ca8a04", []),
    "adakv_expected_attention": ("Ada-KV + Expected Attention", "#fef08a", [4, 2]),
    "knorm": ("Knorm", "#a16207", []),
    "keydiff": ("KeyDiff", "#5eead4", [4, 2]),
    "random": ("Random", "#78716c", [1, 2]),
}
LABELS = {name: entry[0] for name, entry in BUILT_IN.items()}
DATA_COLOURS = ("#ff4fa3", "#4aa3ff", "#b48cff")  # sinks, heavy hitters, the control accent (ui/css/app.css)
MIN_DISTANCE = 50  # RGB distance (0..441) a user colour keeps from every built-in's and DATA_COLOURS


def _hex(rgb) -> str:
    return "#" + "".join(f"{round(c * 255):02x}" for c in rgb)


def _distance(a: str, b: str) -> float:
    pa, pb = (tuple(int(x[i:i + 2], 16) for i in (1, 3, 5)) for x in (a, b))
    return sum((p - q) ** 2 for p, q in zip(pa, pb)) ** 0.5


def user_colour(name: str) -> str:
    """A colour from the name alone (sha256, not Python's salted hash): the name picks a hue; the first
    lightness, then the next hue round the wheel, that keeps MIN_DISTANCE from every taken colour wins."""
    seed = int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:4], "big")
    taken = [c for _, c, _ in BUILT_IN.values()] + list(DATA_COLOURS)
    best = (0.0, "#9ca3af")
    for step in range(72):
        hue = (seed % 360 + step * 5) % 360 / 360
        for light in (0.62, 0.52, 0.72):  # light enough to read on the dark panels
            colour = _hex(colorsys.hls_to_rgb(hue, light, 0.75))
            gap = min(_distance(colour, c) for c in taken)
            if gap >= MIN_DISTANCE:
                return colour
            best = max(best, (gap, colour))
    return best[1]


def _built_in(name: str) -> dict:
    label, colour, dash = BUILT_IN[name]
    return {"label": label, "colour": colour, "dash": dash, "user": False}


def _user(name: str, label: str | None) -> dict:
    return {"label": label or name, "colour": user_colour(name), "dash": [], "user": True}


def label_table(user_files: list[dict] = ()) -> dict:
    """name → {label, colour, dash, user}: every built-in, then the loaded user files ({name, label}); a user's
    NAME never equals a built-in's (custom_policies.RESERVED)."""
    table = {name: _built_in(name) for name in BUILT_IN}
    for f in user_files:
        table[f["name"]] = _user(f["name"], f.get("label"))
    return table
