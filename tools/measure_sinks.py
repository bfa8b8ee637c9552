"""Attention-sink measure used for the SinkVis demo model.

For a passage of T tokens (BOS at position 0), per layer and head,

    ratio = mean over query positions t >= 1 of  A[t, 0] / (1 / (t + 1))

i.e. how many times more attention position 0 gets than a uniform causal
distribution would give it. 1.0 means "no sink"; the layer figure is the mean
over heads, and the best-head figure is the largest per-head ratio in the layer.

    python tools/measure_sinks.py assets/demo-model assets/eval/jargon-heldout.txt
"""
import sys

import torch


@torch.no_grad()
def sink_ratios(model, input_ids):
    """input_ids: 1-D LongTensor starting with BOS. Returns (per_layer, best_head) lists."""
    was_training = model.training
    model.eval()
    out = model(input_ids[None], output_attentions=True)
    if was_training:
        model.train()
    T = input_ids.numel()
    uniform = 1.0 / torch.arange(2, T + 1, dtype=torch.float32)  # 1/(t+1) for t = 1..T-1
    per_layer, best_head = [], []
    for att in out.attentions:  # (1, heads, T, T)
        ratio = (att[0, :, 1:, 0].float() / uniform).mean(dim=1)  # (heads,)
        per_layer.append(ratio.mean().item())
        best_head.append(ratio.max().item())
    return per_layer, best_head


def passage_ids(tokenizer, text, length=256):
    """BOS + (length - 1) text tokens from the start of text."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"][: length - 1]
    return torch.tensor([tokenizer.bos_token_id] + ids)


def main():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir, text_path = sys.argv[1], sys.argv[2]
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="eager", dtype=torch.float32)
    ids = passage_ids(tok, open(text_path, encoding="utf-8").read())
    per_layer, best = sink_ratios(model, ids)
    for i, (m, b) in enumerate(zip(per_layer, best)):
        print(f"layer {i}: mean over heads {m:6.2f}   best head {b:6.2f}")


if __name__ == "__main__":
    main()
