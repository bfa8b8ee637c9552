"""Turn a task's texts into a Prompt of exactly the pieces a cell needs (shared by every task).

The context is [BOS] [chat template's opening] intro haystack-with-needles, at most L tokens;
the question is the question line [the template's turn change] and the answer's prefix; the
answer is what is scored teacher-forced. With chat_template=False (the default) the prompt is
plain text, as Landmark Attention and RULER's base-model form give it.
"""
from ..errors import UserError
from .haystack import assemble, boundary, fill
from .prompt import Prompt, bos, chat_parts, encode


def build(tokenizer, length: int, depth: float, *, intro: str, pool: list[str], needles: list[tuple[float, str]],
          asked: int, question: str, answer_prefix: str, value: str, match: str, chat_template: bool) -> Prompt:
    """needles: (depth, sentence) pairs; needle `asked` is the one the question asks for."""
    prefix = bos(tokenizer)
    if chat_template:
        before, after = chat_parts(tokenizer)
        prefix = encode(tokenizer, before) if before else prefix  # the template brings its own start
        question_ids = encode(tokenizer, "\n" + question) + encode(tokenizer, after) + encode(tokenizer, answer_prefix)
    else:
        question_ids = encode(tokenizer, " " + question + (" " + answer_prefix if answer_prefix else ""))
    if intro:
        prefix = prefix + encode(tokenizer, intro if chat_template else " " + intro)
    needle_ids = [(d, encode(tokenizer, " " + s)) for d, s in needles]
    budget = length - len(prefix) - sum(len(ids) for _, ids in needle_ids)
    if budget < 0:
        raise UserError("bad_input", f"A context of {length} tokens cannot hold the needle and the prompt's start "
                        f"({length - budget} tokens): use a longer length.", "lengths")
    pieces = fill(tokenizer, pool, budget)
    placed = [(boundary(pieces, d), ids) for d, ids in needle_ids]
    ids, spans = assemble(prefix, pieces, placed)
    return Prompt(context_ids=ids, question_ids=question_ids, answer_ids=encode(tokenizer, " " + value),
                  needle_span=spans[asked], needle=needles[asked][1], expected=value, match=match)
