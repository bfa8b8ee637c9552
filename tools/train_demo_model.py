"""Train the small Llama-architecture demo model that ships with SinkVis (assets/demo-model).

Llama blocks (RoPE, grouped-query attention, RMSNorm, SwiGLU) so the demo can run on a real
KV cache past its context with StreamingLLM's in-cache positions; GPT-2's learned absolute
positions cannot.

Data (offline, free to ship): the Jargon File 4.4.7 (public domain, Debian `jargon-text`)
and the reST sources of the Python 3.11 docs (PSF-2.0, Debian `python3.11-doc`).
The byte-level BPE tokenizer (4,096 tokens) is reused from --tokenizer (the shipped one), so
assets/eval/jargon-heldout.txt stays held out and tokenizes the same. Every training window
is <|bos|> + (context - 1) tokens cut at a random offset, so position 0 is always BOS and
only BOS; that is what lets attention sinks form there.

    python tools/train_demo_model.py --minutes 70                     # fresh run
    python tools/train_demo_model.py --minutes 70 --resume            # continue a killed run
    python tools/train_demo_model.py --export-only --out assets/demo-model   # ship the best

Every --eval-minutes: logs val perplexity and the attention-sink ratios, saves
build/demo-train/last.pt (resume point) and, when val perplexity improved, best.pt.
--export-only evaluates best.pt and writes the Hugging Face folder to --out.
"""
import argparse
import glob
import gzip
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from measure_sinks import sink_ratios  # noqa: E402

BOS, EOS = "<|bos|>", "<|endoftext|>"
PACKAGES = ["jargon-text", "python3.11-doc"]

p = argparse.ArgumentParser()
p.add_argument("--layers", type=int, default=6)
p.add_argument("--width", type=int, default=192)
p.add_argument("--heads", type=int, default=6, help="query heads")
p.add_argument("--kv-heads", type=int, default=2, help="key/value heads (grouped-query attention)")
p.add_argument("--mlp", type=int, default=512, help="SwiGLU hidden size")
p.add_argument("--rope-theta", type=float, default=10000.0)
p.add_argument("--context", type=int, default=256)
p.add_argument("--vocab", type=int, default=4096)
p.add_argument("--batch", type=int, default=16)
p.add_argument("--lr", type=float, default=3e-3)
p.add_argument("--min-lr", type=float, default=1e-4)
p.add_argument("--weight-decay", type=float, default=0.1)
p.add_argument("--warmup", type=int, default=200)
p.add_argument("--minutes", type=float, default=80, help="training time budget (cosine schedule follows it)")
p.add_argument("--eval-minutes", type=float, default=5)
p.add_argument("--bf16", type=int, default=1, help="bf16 autocast (fast on CPUs with AMX)")
p.add_argument("--threads", type=int, default=2)
p.add_argument("--seed", type=int, default=1337)
p.add_argument("--resume", action="store_true")
p.add_argument("--export-only", action="store_true", help="evaluate and export the checkpoint, no training")
p.add_argument("--data-dir", default="build/demo-data")
p.add_argument("--tokenizer", default="assets/demo-model", help="folder with the tokenizer to reuse")
p.add_argument("--ckpt-dir", default="build/demo-train")
p.add_argument("--out", default="build/demo-train/export")
p.add_argument("--eval-out", default="assets/eval")
args = p.parse_args()
torch.set_num_threads(args.threads)


def log(msg):
    print(time.strftime("%H:%M:%S"), msg, flush=True)


# ---------------------------------------------------------------- data


def fetch_sources(data_dir):
    root = os.path.join(data_dir, "x")
    if not os.path.isdir(os.path.join(root, "usr/share/doc/python3.11/html/_sources")):
        os.makedirs(root, exist_ok=True)
        subprocess.run(["apt-get", "download", *PACKAGES], cwd=data_dir, check=True)
        for deb in glob.glob(os.path.join(data_dir, "*.deb")):
            subprocess.run(["dpkg", "-x", deb, root], check=True)
    return root


def cut(text, start, length):
    """A slice of the Jargon File lexicon that starts and ends at entry boundaries."""
    a = text.index("\n\n:", start) + 2
    b = text.index("\n\n:", a + length) + 2
    return a, b


def split_documents(root):
    """Returns (train_docs, val_docs, heldout_text)."""
    with gzip.open(os.path.join(root, "usr/share/doc/jargon-text/jargon.txt.gz"), "rt", encoding="utf-8") as f:
        jargon = re.sub(r"(?m)^   ", "", f.read())  # the file indents every line by 3
    h0, h1 = cut(jargon, int(0.60 * len(jargon)), 20_000)  # evaluation text, never trained on
    v0, v1 = cut(jargon, int(0.85 * len(jargon)), 60_000)  # validation
    train = [jargon[:h0], jargon[h1:v0], jargon[v1:]]
    val = [jargon[v0:v1]]
    rst = sorted(glob.glob(os.path.join(root, "usr/share/doc/python3.11/html/_sources/**/*.rst.txt"), recursive=True))
    for i, path in enumerate(rst):
        (val if i % 25 == 0 else train).append(open(path, encoding="utf-8").read())
    return train, val, jargon[h0:h1]


def prepare_data():
    from transformers import AutoTokenizer

    d = args.data_dir
    os.makedirs(d, exist_ok=True)
    tok_dir = os.path.join(d, "tokenizer")
    if not os.path.exists(os.path.join(tok_dir, "tokenizer.json")):
        # A private copy: exporting to assets/demo-model later must not change what we train with.
        AutoTokenizer.from_pretrained(args.tokenizer).save_pretrained(tok_dir)
    tok = AutoTokenizer.from_pretrained(tok_dir)
    train, val, heldout = split_documents(fetch_sources(d))
    held_path = os.path.join(args.eval_out, "jargon-heldout.txt")
    if os.path.exists(held_path):
        if open(held_path, encoding="utf-8").read() != heldout:
            log(f"WARNING: {held_path} differs from this data's held-out slice")
    else:
        os.makedirs(args.eval_out, exist_ok=True)
        with open(held_path, "w", encoding="utf-8") as f:
            f.write(heldout)
    if not os.path.exists(os.path.join(d, "train.bin")):
        for name, docs in (("train", train), ("val", val)):
            ids = tok(docs, add_special_tokens=False)["input_ids"]
            stream = np.concatenate([np.array(x + [tok.eos_token_id], dtype=np.uint16) for x in ids])
            stream.tofile(os.path.join(d, f"{name}.bin"))
    train_ids = np.fromfile(os.path.join(d, "train.bin"), dtype=np.uint16)
    val_ids = np.fromfile(os.path.join(d, "val.bin"), dtype=np.uint16)
    return tok, train_ids, val_ids, heldout


# ---------------------------------------------------------------- model


def windows(stream, starts, bos_id, n):
    """<|bos|> + n - 1 tokens from each start offset."""
    x = np.stack([stream[s:s + n - 1] for s in starts]).astype(np.int64)
    return torch.from_numpy(np.concatenate([np.full((len(starts), 1), bos_id), x], axis=1))


@torch.no_grad()
def evaluate(model, val_ids, bos_id, max_tokens=24_576):
    model.eval()
    n = args.context
    starts = np.arange(0, len(val_ids) - n, n - 1)[:max_tokens // n]
    losses = []
    for i in range(0, len(starts), 8):
        x = windows(val_ids, starts[i:i + 8], bos_id, n)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bool(args.bf16)):
            losses.append(model(input_ids=x, labels=x).loss.float().item())
    model.train()
    return math.exp(sum(losses) / len(losses))


def measure(model, sink_passage):
    model.set_attn_implementation("eager")  # sdpa returns no attention weights
    per_layer, best = sink_ratios(model, sink_passage)
    model.set_attn_implementation("sdpa")
    return per_layer, best


def export(model, tok, stats):
    import copy
    from transformers import GenerationConfig

    out = args.out
    os.makedirs(out, exist_ok=True)
    half = copy.deepcopy(model).half()
    half.config._attn_implementation = None
    half.save_pretrained(out)
    os.chmod(os.path.join(out, "model.safetensors"), 0o644)  # safetensors writes 0600
    tok.model_max_length = args.context
    tok.save_pretrained(out)
    GenerationConfig(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                     pad_token_id=tok.eos_token_id).save_pretrained(out)
    with open(os.path.join(out, "sinkvis.json"), "w") as f:
        json.dump(stats, f, indent=2)
    licence = os.path.join(args.data_dir, "x/usr/share/doc/python3.11/html/_sources/license.rst.txt")
    shutil.copy(licence, os.path.join(out, "LICENSE-python-docs.txt"))
    write_card(out, stats)
    log(f"exported to {out}")


@torch.no_grad()
def dense_past_context(model, ids, spans):
    """Perplexity of a plain full forward (no cache tricks) over BOS + text, by position span.

    ids: 1-D token ids of the held-out text (no BOS). The text is cut into passages of
    BOS + (longest span end - 1) tokens; returns {"a-b": ppl} over positions a..b-1 of every
    passage, so "inside the context" and "past the context" are read off the same forwards.
    """
    model.eval()
    n = max(b for _, b in spans)
    bos = torch.tensor([model.config.bos_token_id])
    nll = {span: [] for span in spans}
    for start in range(0, len(ids) - n + 1, n - 1):
        x = torch.cat([bos, ids[start:start + n - 1]])[None]
        logp = torch.log_softmax(model(input_ids=x).logits[0, :-1].float(), dim=-1)
        token_nll = -logp.gather(1, x[0, 1:, None])[:, 0]  # token_nll[i] predicts position i + 1
        for a, b in spans:
            nll[(a, b)].append(token_nll[max(a, 1) - 1:b - 1])
    return {f"{a}-{b}": round(math.exp(torch.cat(v).mean().item()), 2) for (a, b), v in nll.items()}


def write_card(out, s):
    rows = "\n".join(f"| {i} | {m:.1f} | {b:.1f} |" for i, (m, b) in
                     enumerate(zip(s["sink_ratio_by_layer"], s["best_head_sink_ratio_by_layer"])))
    c = s["context"]
    by_span = list(s["dense_perplexity_by_position"].items())
    ratios = " and ".join(f"{ppl / by_span[0][1]:.1f}× (positions {span})" for span, ppl in by_span[1:])
    past = "\n".join(f"| {span} | {ppl:.1f} |" for span, ppl in s["dense_perplexity_by_position"].items())
    card = f"""# SinkVis demo model

A tiny Llama-architecture causal LM bundled with SinkVis so every feature works offline on
first launch. It is a demo of attention mechanics, not a useful language model. Rotary
positions let it run on a real KV cache past its {c}-token context (StreamingLLM's
in-cache positions); dense attention past the context fails, as the table below shows.

## Data and licences

- **The Jargon File 4.4.7** (Eric S. Raymond et al., Debian package `jargon-text`):
  public domain. A contiguous slice of the lexicon is held out of training and shipped as
  `assets/eval/jargon-heldout.txt`; another slice is the validation set.
- **Python 3.11 documentation reST sources** (Debian package `python3.11-doc`, all of
  `html/_sources/`: library, reference, tutorial, howto, faq, c-api, whatsnew, ...):
  Copyright © 2001-2023 Python Software Foundation, licensed under the PSF License
  Agreement (PSF-2.0). The full licence text ships next to the weights as
  `LICENSE-python-docs.txt`. Every 25th file is held out for validation.

## Architecture

`LlamaForCausalLM`: {s["layers"]} layers, width {s["width"]}, {s["heads"]} query heads and
{s["kv_heads"]} key/value heads (grouped-query attention, head dim {s["width"] // s["heads"]}),
RoPE (theta {s["rope_theta"]:g}), RMSNorm, SwiGLU MLP of {s["mlp"]}, context {c}, vocab
{s["vocab"]}, tied input/output embeddings, no biases, no dropout; {s["params"]:,} parameters,
stored as float16 safetensors (load with `dtype=torch.float32` on CPU for speed). KV cache:
{2 * s["layers"] * s["kv_heads"] * (s["width"] // s["heads"]) * 4:,} bytes per token in fp32. Tokenizer:
the byte-level BPE of the earlier GPT-2 demo, unchanged (4,096 tokens, trained with
`tokenizers` on the training split); `<|bos|>` (id {s["bos_id"]}) is added at the start of
every encoding (`add_special_tokens=True`), `<|endoftext|>` (id {s["eos_id"]}) separates
documents.

## Training

Every window is `<|bos|>` + {c - 1} tokens cut at a random offset in the concatenated
training stream, so position 0 always holds BOS and nothing else (the lever for attention
sinks: a token that is always there and carries no content). AdamW (betas 0.9/0.95,
weight decay {s["weight_decay"]} on matrices), peak lr {s["lr"]}, linear warmup then cosine
decay over the time budget, batch {s["batch"]} × {c} tokens, bf16 autocast.
{"Changed on resume: " + "; ".join(s["changes"]) + "." if s["changes"] else ""}

- training tokens seen: {s["train_tokens"]:,} ({s["train_tokens"] / s["train_set_tokens"]:.1f} passes
  over {s["train_set_tokens"]:,} distinct tokens), {s["steps"]:,} steps
- time: {s["train_seconds"] / 60:.0f} min of wall-clock training (evaluations excluded) on {s["hardware"]}
- validation perplexity: **{s["val_perplexity"]:.1f}** ({s["val_tokens"]:,} validation tokens,
  first {24_576 // c * c:,} of them scored in {c}-token windows)

## Attention sinks

Measure: take the first 255 tokens of `assets/eval/jargon-heldout.txt` after `<|bos|>`
(a 256-token passage). For each layer and head, average `A[t,0] / (1/(t+1))` over query
positions t ≥ 1, where `A` is the eager softmax attention: how many times the uniform
causal share position 0 receives (1.0 = no sink). "Mean" averages that over the (query)
heads of the layer; "best head" is the largest single head. Reproduce with
`python tools/measure_sinks.py assets/demo-model assets/eval/jargon-heldout.txt`.

| layer | mean over heads | best head |
|---|---|---|
{rows}

Layers with a mean of at least 5× uniform: {", ".join(str(i) for i, m in enumerate(s["sink_ratio_by_layer"]) if m >= 5) or "none"}.
Below 1.0 means the layer's heads attend to position 0 less than uniformly (mostly local
attention). Training logs these ratios and the val perplexity at every evaluation
(`build/demo-train/train.log`).

## Past the context: dense attention

A plain full forward (every token attends to every earlier one, positions 0..n-1) over
passages of `<|bos|>` + {4 * c - 1} tokens of `assets/eval/jargon-heldout.txt`, perplexity by
position span (all passages pooled). Past the {c}-token context the model meets rotary
positions it never saw in training: perplexity there is {ratios} the in-context figure.
Evaluate's StreamingLLM instead keeps the cache inside the context with in-cache positions.

| positions | perplexity |
|---|---|
{past}

## Retrain

```
python tools/train_demo_model.py --layers {s["layers"]} --width {s["width"]} --heads {s["heads"]} --kv-heads {s["kv_heads"]} --mlp {s["mlp"]} --context {c} --batch {s["batch"]} --lr {s["lr"]} --weight-decay {s["weight_decay"]:g} --minutes {s["minutes"]:g}
python tools/train_demo_model.py --export-only --out assets/demo-model
```
(The final settings; where the run changed them on resume, "Changed on resume" above says when.
`--resume` continues a killed run from `build/demo-train/last.pt`; `--export-only` writes
`build/demo-train/best.pt`, the checkpoint with the best val perplexity, to `--out`; the data
packages are fetched with `apt-get download` + `dpkg -x` into `build/demo-data/` when
missing; the tokenizer is copied from `assets/demo-model`.) Figures are also in
`sinkvis.json`.
"""
    with open(os.path.join(out, "README.md"), "w") as f:
        f.write(card)


def build_model(tok):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=len(tok), hidden_size=args.width, intermediate_size=args.mlp,
                         num_hidden_layers=args.layers, num_attention_heads=args.heads,
                         num_key_value_heads=args.kv_heads, head_dim=args.width // args.heads,
                         max_position_embeddings=args.context, rms_norm_eps=1e-5,
                         rope_parameters={"rope_type": "default", "rope_theta": args.rope_theta},
                         tie_word_embeddings=True, bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id, attn_implementation="sdpa")
    return LlamaForCausalLM(config)


def stats_for(ppl, per_layer, best, state, params, tok, train_ids, val_ids):
    return {
        "val_perplexity": round(ppl, 2),
        "sink_ratio_by_layer": [round(r, 2) for r in per_layer],
        "best_head_sink_ratio_by_layer": [round(r, 2) for r in best],
        "train_tokens": state["step"] * args.batch * args.context,
        "train_seconds": round(state["train_seconds"]),
        "steps": state["step"], "params": params, "layers": args.layers, "width": args.width,
        "heads": args.heads, "kv_heads": args.kv_heads, "mlp": args.mlp, "rope_theta": args.rope_theta,
        "context": args.context, "vocab": len(tok), "lr": args.lr,
        "weight_decay": args.weight_decay, "batch": args.batch, "minutes": args.minutes,
        "bos_id": tok.bos_token_id, "eos_id": tok.eos_token_id,
        "train_set_tokens": len(train_ids), "val_tokens": len(val_ids),
        "hardware": f"a {os.cpu_count()}-core AMD EPYC shared with other jobs",
        "changes": state.get("changes", [])}


def main():
    if args.export_only:  # the run's own settings, so the model matches best.pt and the card tells the truth
        saved = torch.load(os.path.join(args.ckpt_dir, "best.pt"), weights_only=False)["args"]
        for key in ("layers", "width", "heads", "kv_heads", "mlp", "rope_theta", "context", "batch", "lr",
                    "min_lr", "weight_decay", "warmup", "minutes", "bf16", "seed", "tokenizer"):
            setattr(args, key, saved[key])
    tok, train_ids, val_ids, heldout = prepare_data()
    log(f"tokens: train {len(train_ids):,}, val {len(val_ids):,}; held-out eval text "
        f"{len(tok(heldout, add_special_tokens=False)['input_ids']):,} tokens")
    sink_passage = torch.tensor(tok(heldout)["input_ids"][:256])
    assert sink_passage[0].item() == tok.bos_token_id

    torch.manual_seed(args.seed)
    model = build_model(tok)
    params = sum(p.numel() for p in model.parameters())
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.95))
    state = {"step": 0, "train_seconds": 0.0, "best_val": float("inf")}
    last_path = os.path.join(args.ckpt_dir, "last.pt")
    best_path = os.path.join(args.ckpt_dir, "best.pt")
    if args.export_only:
        ck = torch.load(best_path, weights_only=False)
        model.load_state_dict(ck["model"])
        state = ck["state"]
        log(f"exporting best.pt: step {state['step']}, {state['train_seconds'] / 60:.1f} min trained")
    elif args.resume and os.path.exists(last_path):
        ck = torch.load(last_path, weights_only=False)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        opt.param_groups[0]["weight_decay"] = args.weight_decay  # a resumed run may change it (a sink lever)
        state = ck["state"]
        for key in ("weight_decay", "minutes", "lr", "min_lr"):
            if ck["args"][key] != getattr(args, key):
                state.setdefault("changes", []).append(
                    f"{key} {ck['args'][key]:g} → {getattr(args, key):g} from step {state['step']}")
        log(f"resumed at step {state['step']}, {state['train_seconds'] / 60:.1f} min trained")
    log(f"model: {params:,} params; Llama {args.layers} layers × {args.width}, {args.heads} query heads, "
        f"{args.kv_heads} KV heads, context {args.context}")

    rng = np.random.default_rng(args.seed + state["step"])
    budget = args.minutes * 60
    n = args.context
    last_eval = t0 = time.time()
    model.train()
    while True:
        done = args.export_only or state["train_seconds"] >= budget
        if done or time.time() - last_eval >= args.eval_minutes * 60:
            ppl = evaluate(model, val_ids, tok.bos_token_id)
            per_layer, best = measure(model, sink_passage)
            log(f"EVAL step {state['step']} tokens {state['step'] * args.batch * n:,} val ppl {ppl:.1f} | sinks by layer "
                + " ".join(f"{r:.1f}" for r in per_layer) + " | best head " + " ".join(f"{r:.1f}" for r in best))
            if args.export_only:
                stats = stats_for(ppl, per_layer, best, state, params, tok, train_ids, val_ids)
                held = torch.tensor(tok(heldout, add_special_tokens=False)["input_ids"])
                spans = [(1, n), (n, 2 * n), (2 * n, 4 * n)]
                stats["dense_perplexity_by_position"] = dense_past_context(model, held, spans)
                log(f"dense perplexity by position: {stats['dense_perplexity_by_position']}")
                export(model, tok, stats)
                break
            improved = ppl < state["best_val"]
            state["best_val"] = min(ppl, state["best_val"])
            os.makedirs(args.ckpt_dir, exist_ok=True)
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "state": state,
                        "args": vars(args)}, last_path + ".tmp")
            os.replace(last_path + ".tmp", last_path)
            if improved:
                torch.save({"model": model.state_dict(), "state": dict(state), "args": vars(args)}, best_path + ".tmp")
                os.replace(best_path + ".tmp", best_path)
            if done:
                break
            last_eval = t0 = time.time()  # evaluation time is not training time

        progress = min(state["train_seconds"] / budget, 1.0)
        lr = args.min_lr + 0.5 * (args.lr - args.min_lr) * (1 + math.cos(math.pi * progress))
        lr *= min(1.0, (state["step"] + 1) / args.warmup)
        for g in opt.param_groups:
            g["lr"] = lr
        x = windows(train_ids, rng.integers(0, len(train_ids) - n, args.batch), tok.bos_token_id, n)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bool(args.bf16)):
            loss = model(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        state["step"] += 1
        now = time.time()
        state["train_seconds"] += now - t0
        t0 = now
        if state["step"] % 50 == 0:
            log(f"step {state['step']} loss {loss.item():.3f} lr {lr:.2e} "
                f"{state['train_seconds'] / 60:.1f} min")


if __name__ == "__main__":
    main()
