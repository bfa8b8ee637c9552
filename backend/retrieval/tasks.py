"""The task registry: name → maker(tokenizer, length, depth, seed, chat_template, **custom) -> Prompt."""
from . import custom, needle, pass_key

TASKS = {"pass_key": pass_key.make, "needle": needle.make, "multi_key": needle.make_multi_key, "custom": custom.make}
DESCRIPTIONS = {
    "pass_key": "Pass key (Landmark Attention): a 5-digit key in repeated filler; correct = first integer of the answer.",
    "needle": "Needle (RULER single): a 7-digit magic number for a key, in the bundled texts.",
    "multi_key": "Multi-key needle (RULER): four needles with different keys, one asked for.",
    "custom": "Your own: haystack, needle sentence, question and expected answer.",
}
