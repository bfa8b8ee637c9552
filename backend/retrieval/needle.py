"""RULER's needle in a haystack (Hsieh et al. 2024, niah_single / niah_multikey): "One of the
special magic numbers for {key} is: {value}." in a haystack of the bundled texts
(assets/eval/*), then "What is the special magic number for {key} mentioned in the provided
text?". Correct = the answer holds the 7-digit value. The multi-key variant hides several
needles with different keys (distractors at other depths) and asks for one."""
import numpy as np

from ..defaults import BUNDLED_TEXTS, bundled_text
from .build import build
from .haystack import sentences

INTRO = ("Some special magic numbers are hidden within the following text. Make sure to memorize it. "
         "I will quiz you about the numbers afterwards.")
KEYS = ["amber-falcon", "quiet-harbor", "silver-thistle", "crimson-lantern", "hollow-meadow", "brisk-otter",
        "velvet-canyon", "frozen-orchard", "gentle-comet", "rusty-anchor", "wild-juniper", "pale-glacier"]
DISTRACTORS = 3  # multi-key: needles besides the asked one (RULER's niah_multikey_1 has 4 keys in all)


def pool() -> list[str]:
    return [s for name in BUNDLED_TEXTS for s in sentences(bundled_text(name))]


def _needle(key: str, value: str) -> str:
    return f"One of the special magic numbers for {key} is: {value}."


def make(tokenizer, length: int, depth: float, seed: int, chat_template: bool = False, multi_key: bool = False, **_):
    rng = np.random.default_rng([seed, length, round(depth * 1000), int(multi_key)])
    count = 1 + (DISTRACTORS if multi_key else 0)
    keys = [KEYS[i] for i in rng.choice(len(KEYS), count, replace=False)]
    values = [str(int(v)) for v in rng.integers(1_000_000, 10_000_000, count)]
    depths = [depth] + [float(d) for d in rng.uniform(0, 1, count - 1)]
    question = f"What is the special magic number for {keys[0]} mentioned in the provided text?"
    prefix = f"The special magic number for {keys[0]} mentioned in the provided text is"
    return build(tokenizer, length, depth, intro=INTRO, pool=pool(), needles=list(zip(depths, map(_needle, keys, values))),
                 asked=0, question=question, answer_prefix=prefix, value=values[0], match="contains",
                 chat_template=chat_template)


def make_multi_key(tokenizer, length: int, depth: float, seed: int, chat_template: bool = False, **_):
    return make(tokenizer, length, depth, seed, chat_template, multi_key=True)
