"""The user's own task: their haystack (cycled to fill the length), their needle sentence at
depth d, their question and the answer expected (which the needle must contain)."""
from ..errors import UserError
from .build import build
from .haystack import sentences


def check(haystack: str, needle: str, question: str, answer: str) -> None:
    for name, value in (("haystack", haystack), ("needle", needle), ("question", question), ("answer", answer)):
        if not value or not value.strip():
            raise UserError("retrieval_missing_" + name, f"The custom task needs a {name}: give one.", name)
    if answer.strip().lower() not in needle.lower():
        raise UserError("retrieval_answer_not_in_needle", f"The answer {answer.strip()[:60]!r} is not in the needle "
                        "sentence, so no context could hold it: put the answer in the needle, or fix the answer.", "answer")
    if not sentences(haystack):
        raise UserError("retrieval_missing_haystack", "The haystack has no sentences: give some text.", "haystack")


def make(tokenizer, length: int, depth: float, seed: int, chat_template: bool = False, *, haystack: str, needle: str,
         question: str, answer: str, **_):
    check(haystack, needle, question, answer)
    return build(tokenizer, length, depth, intro="", pool=sentences(haystack), needles=[(depth, needle.strip())],
                 asked=0, question=question.strip(), answer_prefix="", value=answer.strip(), match="contains",
                 chat_template=chat_template)
