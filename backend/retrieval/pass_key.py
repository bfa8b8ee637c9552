"""Pass key retrieval in Landmark Attention's form (Mohtashami & Jaggi 2023): repeated filler,
"The pass key is K. Remember it. K is the pass key." at depth d, then "What is the pass key?
The pass key is". Correct = the first integer of the greedy answer is K (a 5-digit key)."""
import numpy as np

from .build import build

INTRO = ("There is an important info hidden inside a lot of irrelevant text. Find it and memorize them. "
         "I will quiz you about the important information there.")
FILLER = ["The grass is green.", "The sky is blue.", "The sun is yellow.", "Here we go.", "There and back again."]
QUESTION, ANSWER_PREFIX = "What is the pass key?", "The pass key is"


def make(tokenizer, length: int, depth: float, seed: int, chat_template: bool = False, **_):
    key = str(int(np.random.default_rng([seed, length, round(depth * 1000)]).integers(10000, 100000)))
    needle = f"The pass key is {key}. Remember it. {key} is the pass key."
    return build(tokenizer, length, depth, intro=INTRO, pool=FILLER, needles=[(depth, needle)], asked=0,
                 question=QUESTION, answer_prefix=ANSWER_PREFIX, value=key, match="first_integer",
                 chat_template=chat_template)
