"""Filler text as sentences, and a context of L tokens with needles at sentence boundaries."""
import re

from .prompt import encode

_SENTENCE_END = re.compile(r"(?<=[.!?])[\"'”’)]*\s+")


def sentences(text: str) -> list[str]:
    """A text split at sentence ends; whitespace runs (line breaks) become one space."""
    flat = re.sub(r"\s+", " ", text).strip()
    return [s.strip() for s in _SENTENCE_END.split(flat) if s.strip()]


def fill(tokenizer, pool: list[str], budget: int) -> list[list[int]]:
    """Token ids of whole sentences from pool (cycled) totalling at most budget tokens."""
    if not pool:
        return []
    pieces, total, i = [], 0, 0
    encoded = {}
    while True:
        s = pool[i % len(pool)]
        ids = encoded.setdefault(s, encode(tokenizer, " " + s))
        if total + len(ids) > budget or not ids:
            return pieces
        pieces.append(ids)
        total += len(ids)
        i += 1


def boundary(pieces: list[list[int]], depth: float) -> int:
    """The sentence boundary (0..len(pieces)) nearest to `depth` of the haystack's tokens."""
    total = sum(len(p) for p in pieces)
    target, best, best_gap, seen = depth * total, 0, float("inf"), 0
    for i in range(len(pieces) + 1):
        if abs(seen - target) < best_gap:
            best, best_gap = i, abs(seen - target)
        if i < len(pieces):
            seen += len(pieces[i])
    return best


def assemble(prefix: list[int], pieces: list[list[int]], needles: list[tuple[int, list[int]]]):
    """prefix + pieces with each needle (boundary index, ids) inserted; returns (ids, spans)
    where spans[j] is needle j's [start, end) in the ids."""
    ids, spans = list(prefix), [None] * len(needles)
    order = sorted(range(len(needles)), key=lambda j: needles[j][0])
    k = 0
    for i in range(len(pieces) + 1):
        while k < len(order) and needles[order[k]][0] == i:
            j = order[k]
            spans[j] = (len(ids), len(ids) + len(needles[j][1]))
            ids.extend(needles[j][1])
            k += 1
        if i < len(pieces):
            ids.extend(pieces[i])
    return ids, spans
