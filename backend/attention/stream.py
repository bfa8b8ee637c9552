"""Live attention stream: one forward per new token over the model's own KV cache.

Step t feeds only token t; the model reuses its DynamicCache for keys 0..t-1 and
returns token t's attention row over keys 0..t for every layer and head. The
prefix is never recomputed, so a step costs one cached decode step plus O(L·H·t)
bookkeeping.

Views: a head of a layer, a layer's mean over heads, or the mean over all layers
and heads. Every view's running sums are updated each step (they are O(n) each),
so switching views mid-stream needs no model call.

Memory bound. Past rows are kept pooled, not whole (stream_history.py): every view holds a fixed grid
of CELLS × CELLS cells (max and mean, float16), so the history is the same size at any length, and a stream
runs to the model's context. The running sums behind sinks and heavy hitters are O(n) per view. State
bytes (`state_bound`, what `history_bytes` reports):

    views × (row bins × column bins × 4 + column bins × 12)  +  views × context × 24  (+ a few KB)

with views = L·H + L + 1. SmolLM2 (30 × 9, context 8,192): 76.4 MB + 59.2 MB = 135.6 MB at any position
(the model's own KV cache adds L × 2 × KV heads × head dim × 4 bytes a token: 377 MB at 8,192). A stream
whose context fits the cells (the demo model's 256) keeps every row exactly (float16).
Rows returned by `step` are the model's own float32 weights, not the stored copy.
"""
import time

import numpy as np

from . import sinks as S
from .stream_history import PooledHistory

CELLS = 256  # the pooled history's cells per side (about a heatmap's height in pixels)


def state_bound(layers: int, heads: int, context_length: int, sink_count: int = 4, cells: int = CELLS) -> int:
    """Bytes a stream's state holds at most (the formula above), whatever it has streamed."""
    views = layers * heads + layers + 1
    return PooledHistory.bound(views, context_length, cells, range(sink_count)) + views * context_length * 24 + layers * S.RECOMMEND_MAX_K * 8


class StreamSession:
    """A prompt streamed token by token through one loaded model (backend.models.loaded.LoadedModel)."""

    def __init__(self, loaded, prompt_ids: list[int], token_labels, generate: int = 0, temperature: float = 0.0,
                 seed: int = 0, sink_threshold: float = S.SINK_THRESHOLD, heavy_fraction: float = S.HEAVY_FRACTION,
                 sink_count: int = 4, cells: int = CELLS):
        import torch
        from transformers import DynamicCache

        self.loaded = loaded
        self.layers, self.heads = int(loaded.spec["layers"]), int(loaded.spec["heads"])
        self.context_length = loaded.context_length
        self.cells = cells
        self.max_tokens = self.context_length  # bounded state (above): a stream always reaches the context
        if not prompt_ids or len(prompt_ids) > self.max_tokens:
            raise ValueError("prompt must hold 1..max_tokens tokens")  # the Api checks this first
        self.token_ids = list(prompt_ids)          # prompt ids, then generated ids as they come
        self.tokens = list(token_labels(prompt_ids))
        self._label = token_labels
        self.n_prompt = len(prompt_ids)
        self.generate = generate
        self.temperature = temperature
        self.sink_threshold, self.heavy_fraction, self.sink_count = sink_threshold, heavy_fraction, sink_count
        self.position = 0                          # tokens processed so far = index of the next query
        self.done, self.message = False, None
        self.view = (self.layers - 1, None)        # (layer | "all", head | None) the Api shows; last layer's mean

        self._torch = torch
        self._cache = DynamicCache(config=loaded.model.config)
        self._backbone = getattr(loaded.model, "base_model", loaded.model)  # the transformer without its LM head
        self._generator = torch.Generator(device="cpu").manual_seed(int(seed))
        self._next_logits = None

        lh, n = self.layers * self.heads, self.max_tokens
        self.n_views = lh + self.layers + 1        # every head, every layer's mean, the all-layer mean
        self._history = PooledHistory(self.n_views, n, cells, keep=range(sink_count))
        self._accumulated = np.zeros((self.n_views, n))                  # H2O score: column sums, diagonal included
        self._diagonal = np.zeros((self.n_views, n))                     # attention each key paid itself
        self._since = np.full((self.n_views, n), -1, dtype=np.int32)    # step a key became a sink, -1 if not one
        self._last_rows = np.zeros((self.n_views, 0), dtype=np.float32)  # newest query's row in every view
        # Per layer (mean over heads), attention on keys 0..RECOMMEND_MAX_K-1 from the queries at least
        # RECOMMEND_GAP after them: the sums behind the recommended sink count (sinks.py).
        self._lead_sum = np.zeros((self.layers, S.RECOMMEND_MAX_K))

    # ---- views -------------------------------------------------------------------------------
    def view_index(self, layer, head) -> int:
        """(layer, head) → row of the per-view arrays. layer "all" → all layers and heads; head None → mean over heads.

        Assumes a valid view (the Api validates it and names the field at fault).
        """
        if layer == "all":
            return self.layers * self.heads + self.layers
        layer %= self.layers
        return self.layers * self.heads + layer if head is None else layer * self.heads + head

    def _views(self, per_head: np.ndarray) -> np.ndarray:
        """per_head [L, H, m] → [n_views, m] in view_index order."""
        layer_means = per_head.mean(axis=1)
        return np.concatenate([per_head.reshape(-1, per_head.shape[-1]), layer_means, layer_means.mean(axis=0, keepdims=True)])

    # ---- the model ---------------------------------------------------------------------------
    def _next_token(self) -> int:
        if self.position < self.n_prompt:
            return self.token_ids[self.position]
        logits = self._next_logits.float()
        if self.temperature <= 0:
            return int(logits.argmax())
        probs = self._torch.softmax(logits / self.temperature, dim=-1)
        return int(self._torch.multinomial(probs, 1, generator=self._generator))

    def step(self) -> dict | None:
        """Feed one token; returns {position, token_id, token, generated, rows [L, H, t+1] float32, step_seconds}.

        None once the stream is done (see `message`).
        """
        if self.done:
            return None
        start = time.perf_counter()
        torch, t = self._torch, self.position
        token_id = self._next_token()
        generated = t >= self.n_prompt
        # Only the last prompt token and generated ones need next-token logits; before that the
        # backbone alone does the step and skips the LM head (a third of a GPT-2-small step).
        needs_logits = self.generate > 0 and t >= self.n_prompt - 1
        net = self.loaded.model if needs_logits else self._backbone
        try:
            with torch.inference_mode():
                out = net(input_ids=torch.tensor([[token_id]], device=self.loaded.device), past_key_values=self._cache,
                          use_cache=True, output_attentions=True)
            rows = self._rows(out.attentions, t)
        except BaseException:
            # The forward may have written this token into some layers' caches: no safe retry.
            self.done, self.message = True, "A step failed, so the stream ended; press Start to begin again."
            raise
        self._cache = out.past_key_values
        if needs_logits:
            self._next_logits = out.logits[0, -1].detach().cpu()
        if generated:
            self.token_ids.append(token_id)
            self.tokens.extend(self._label([token_id]))
        self._record(rows, t)
        self.position = t + 1
        self._check_done(token_id, generated)
        return {"position": t, "token_id": token_id, "token": self.tokens[t], "generated": generated,
                "rows": rows, "step_seconds": time.perf_counter() - start}

    def _rows(self, attentions, t: int) -> np.ndarray:
        if attentions is None or any(a is None for a in attentions):
            raise RuntimeError("the model returned no attention weights (it needs eager attention)")
        # [1, H, 1, keys] per layer; a sliding-window layer returns only its window's keys,
        # which are the most recent ones, so they go at the right end of the row.
        rows = np.zeros((self.layers, self.heads, t + 1), dtype=np.float32)
        for layer, attn in enumerate(attentions):
            row = attn[0, :, -1, :].float().cpu().numpy()
            rows[layer, :, t + 1 - row.shape[-1]:] = row
        if not np.isfinite(rows).all():
            # A UserError (not FloatingPointError): the Api answers "non_finite" with this message, not "internal".
            from ..errors import UserError

            raise UserError("non_finite", "The attention weights contain inf/NaN (fp16 overflow?); reload the model in "
                            "fp32 or bf16.", "precision")
        return rows

    def _record(self, rows: np.ndarray, t: int) -> None:
        views = self._views(rows)
        self._history.add(t, views)
        self._last_rows = views
        self._accumulated[:, : t + 1] += views
        self._diagonal[:, t] = views[:, t]
        lead = min(S.RECOMMEND_MAX_K, t - S.RECOMMEND_GAP + 1)  # keys j ≤ t - gap
        if lead > 0:
            lh = self.layers * self.heads
            self._lead_sum[:, :lead] += views[lh: lh + self.layers, :lead]
        # Sinks in every view, so a view switch shows the step each one became a sink.
        is_sink = S.sink_mask(self._received(t + 1), t, self.sink_threshold)
        since = self._since[:, : t + 1]
        since[is_sink & (since < 0)] = t
        since[~is_sink] = -1

    def _received(self, n: int) -> np.ndarray:
        """Attention keys 0..n-1 received from the queries after them, every view: [n_views, n]."""
        return self._accumulated[:, :n] - self._diagonal[:, :n]

    def _check_done(self, token_id: int, generated: bool) -> None:
        n = self.position
        eos = getattr(self.loaded.tokenizer, "eos_token_id", None)
        if n >= self.max_tokens:
            self.done = True
            self.message = f"Reached the model's context length ({self.context_length:,} tokens); the stream stops here."
        elif generated and eos is not None and token_id == eos:
            self.done, self.message = True, f"The model generated its end-of-text token after {n - self.n_prompt} new tokens."
        elif n >= self.n_prompt + self.generate:
            self.done = True
            self.message = (f"End of the prompt ({self.n_prompt:,} tokens)." if self.generate == 0
                            else f"Generated {self.generate:,} tokens after the prompt.")

    # ---- what the UI reads -------------------------------------------------------------------
    def newest_row(self, view: int) -> np.ndarray:
        """The newest query's row over keys 0..t in one view."""
        return self._last_rows[view]

    @property
    def pooled(self) -> bool:
        """Whether the history is pooled cells (the context is longer than CELLS) rather than every row."""
        return not self._history.single

    def history(self, view: int) -> list[np.ndarray]:
        """Every row so far of one view (row t over keys 0..t), when the history keeps single tokens (not pooled)."""
        return self._history.rows(view)

    def history_cells(self, view: int) -> dict:
        """The pooled history of one view so far: row_edges, col_edges, max, mean (stream_history.py)."""
        return self._history.cells(view)

    def history_edges(self) -> dict:
        """The pooled history's cells over the whole stream: {row_edges, col_edges} (token positions)."""
        return {"row_edges": self._history.row_edges.tolist(), "col_edges": self._history.col_edges.tolist()}

    def current_cells(self, view: int) -> dict:
        """The newest query's row bin in one view: {row, max, mean}."""
        return self._history.current_row(view)

    def sinks(self, view: int) -> list[dict]:
        """Current sinks of a view: position, token, score (mean received attention), since_step."""
        if self.position == 0:
            return []
        last = self.position - 1
        mean = S.mean_received(self._received(self.position)[view], last)
        positions = np.flatnonzero(self._since[view, : last + 1] >= 0)
        return [{"position": int(j), "token": self.tokens[j], "score": float(mean[j]), "since_step": int(self._since[view, j])}
                for j in positions]

    def heavy_hitters(self, view: int) -> list[int]:
        return S.heavy_hitters(self._accumulated[view, : self.position], self.heavy_fraction)

    def sink_mass_by_layer(self) -> list[float]:
        """Per layer, the mean over heads of the newest query's attention on the first sink_count tokens."""
        lh = self.layers * self.heads
        return S.first_k_mass(self._last_rows[lh: lh + self.layers], self.sink_count).tolist()

    def sink_grid(self) -> list[list[float | None]]:
        """layers × heads: attention on position 0 averaged over the queries after it (None before any)."""
        if self.position < 2:
            return [[None] * self.heads for _ in range(self.layers)]
        received0 = self._received(self.position)[: self.layers * self.heads, 0] / (self.position - 1)
        return received0.reshape(self.layers, self.heads).tolist()

    def lead_shares(self) -> np.ndarray:
        """[layers, RECOMMEND_MAX_K]: each leading key's lead share (sinks.lead_share); NaN while too few queries."""
        counts = self.position - np.arange(S.RECOMMEND_MAX_K) - S.RECOMMEND_GAP
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(counts >= S.RECOMMEND_MIN_QUERIES, self._lead_sum / np.maximum(counts, 1), np.nan)

    def recommended_sinks_by_layer(self) -> list[int]:
        even = S.even_share(self.position)
        return [S.recommended_sink_count(share, even) for share in self.lead_shares()]

    def recommended_sinks(self) -> int:
        """The largest per-layer recommended sink count (sinks.py has the rule).

        Per layer, not on the all-layer mean: a KV cache is pruned for every layer at
        once, so a leading sink that any one layer leans on must stay (the demo model's
        sinks live mostly in layers 4 and 5 and the all-layer mean dilutes them).
        """
        return max(self.recommended_sinks_by_layer(), default=0)

    def history_bytes(self) -> int:
        return int(self._history.nbytes + self._accumulated.nbytes + self._diagonal.nbytes + self._since.nbytes
                   + self._lead_sum.nbytes + self.n_views * self.max_tokens * 4)  # the newest row of every view (_last_rows) at its longest

    def state_bound(self) -> int:
        return state_bound(self.layers, self.heads, self.context_length, self.sink_count, self.cells)
