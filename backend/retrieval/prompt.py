"""One retrieval prompt as token ids: context (the part a policy may compress), question and
answer (never compressed), where the needle lies, and how a generated answer is judged.

Contexts are built from pieces tokenized one by one (each sentence with its leading space),
so the needle's token span is known exactly and the context has a known length.
"""
import re
from dataclasses import dataclass, field

_INTEGER = re.compile(r"\d+")


@dataclass
class Prompt:
    context_ids: list[int]
    question_ids: list[int]
    answer_ids: list[int]
    needle_span: tuple[int, int]   # [start, end) positions of the asked needle in context_ids
    needle: str                    # the needle sentence as inserted
    expected: str                  # the value the answer must hold
    match: str = "contains"        # "first_integer" (pass key) or "contains" (needle, custom)
    notes: list[str] = field(default_factory=list)

    def correct(self, answer: str) -> bool:
        if self.match == "first_integer":
            found = _INTEGER.search(answer)
            return found is not None and found.group(0) == self.expected
        return self.expected.strip().lower() in answer.lower()


def encode(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]


def bos(tokenizer) -> list[int]:
    """The ids the tokenizer puts before a text (BOS, if it adds one)."""
    with_special = tokenizer("a", add_special_tokens=True, verbose=False)["input_ids"]
    plain = encode(tokenizer, "a")
    return with_special[: len(with_special) - len(plain)] if with_special[-len(plain):] == plain else []


def chat_parts(tokenizer) -> tuple[str, str]:
    """(text before the user's message, text after it up to the assistant's turn) of the chat template."""
    marker = "\u0000MARK\u0000"
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": marker}], tokenize=False,
                                             add_generation_prompt=True)
    before, after = rendered.split(marker)
    return before, after
