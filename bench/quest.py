"""Quest benchmark: one Quest decode step vs one plain cached decode step, side by side.

SmolLM2-135M (fp32, CPU), 2,048 cached tokens, k = 8 pages of 16 (backend/evaluate/quest.py):

  plain   one cached decode step over all 2,048 entries, the model's own eager attention
  quest   the same step through quest_attention: per layer and KV head the page bounds of the
          finished pages (kept from step to step, as Quest keeps its page metadata), the top-8
          pages plus the current page gathered, attention over those 129..144 keys only

Both steps append one token and are cropped back, so every step sees 2,048 cached tokens. Steps
alternate (plain, quest, plain, …) so background load hits both alike; medians are printed.
Target (issue #22): quest ≤ 1.3 × plain.

    python bench/quest.py [--model PATH(.gguf or folder)] [--cached 2048] [--pages 8] [--steps 30] [--threads 2]
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from evaluate import SMOLLM2, load  # noqa: E402  (bench/evaluate.py's SmolLM2 loader)


def main() -> None:
    from transformers import DynamicCache

    from backend.evaluate.quest import PAGE, QuestState, attend_quest

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=SMOLLM2)
    parser.add_argument("--cached", type=int, default=2048)
    parser.add_argument("--pages", type=int, default=8)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    loaded = load(args.model)
    model, n = loaded.model, args.cached
    text = (Path(__file__).resolve().parents[1] / "assets" / "eval" / "alice-chapter1.txt").read_text(encoding="utf-8")
    ids = loaded.tokenizer(text)["input_ids"]
    assert len(ids) > n + args.steps, "the text is too short for these settings"
    caches = {"plain": DynamicCache(config=model.config), "quest": DynamicCache(config=model.config)}
    state = QuestState(args.pages)
    with torch.inference_mode():
        for chunk in range(0, n, 256):  # fill both caches with the same 2,048 entries
            out = model(input_ids=torch.tensor([ids[chunk:chunk + 256]]), past_key_values=caches["plain"], use_cache=True)
        for layer, cached in enumerate(caches["plain"].layers):
            caches["quest"].update(cached.keys.clone(), cached.values.clone(), layer)

    def step(kind, i):
        kwargs = dict(input_ids=torch.tensor([[ids[n + i]]]), position_ids=torch.tensor([[n]]),
                      past_key_values=caches[kind], use_cache=True)
        started = time.perf_counter()
        if kind == "plain":
            model(**kwargs)
        else:
            with attend_quest(model):
                model(**kwargs, quest=state)
        took = time.perf_counter() - started
        caches[kind].crop(-1)  # back to n entries
        return took

    times = {"plain": [], "quest": []}
    with torch.inference_mode():
        step("plain", 0), step("quest", 0)  # warm-up (and the page bounds of the 2,048 cached keys, once)
        for i in range(args.steps):
            for kind in ("plain", "quest"):
                times[kind].append(step(kind, i))
    p, q = (statistics.median(times[k]) * 1000 for k in ("plain", "quest"))
    read = args.pages * PAGE + (n + 1 - (n // PAGE) * PAGE)
    print(f"model {args.model.name}, {n} cached tokens, k = {args.pages} pages of {PAGE} "
          f"({read} of {n + 1} keys read per layer and KV head), {args.threads} threads, {args.steps} steps each")
    print(f"plain cached decode step   {p:8.2f} ms")
    print(f"Quest decode step          {q:8.2f} ms")
    print(f"quest / plain   {q / p:6.2f}x   (target ≤ 1.3)")


if __name__ == "__main__":
    main()
