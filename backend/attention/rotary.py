"""Each layer's own rotary embedding, to move cached keys and un-rotate captured queries.

A rotary key cached at position p is R(p)·k; rotations compose, so a key moves from p to q by
R(q − p), and R(−p) undoes R(p) (kvpress's KeyRerotationPress moves keys the same way). Models
differ in how they rotate — which dimensions pair up (Llama's halves, Cohere's interleaved
pairs), how many rotate (partial rotary: Phi-3, Pythia), the frequencies per layer type (Gemma 3's
local and global layers), layers with none at all (SmolLM3's NoPE layers) — so SinkVis never
rotates by hand: it asks the model's rotary module for cos/sin at the wanted offsets and applies
the model's own `apply_rotary_pos_emb` from the layer's modeling file.
"""
import inspect
import sys


class LayerRotary:
    """R(positions)·x for one layer, with the model's own rotary module and pairing."""

    def __init__(self, apply, embedding, layer_type):
        self.apply, self.embedding, self.layer_type = apply, embedding, layer_type
        scaling = getattr(embedding, "attention_scaling" if layer_type is None else f"{layer_type}_attention_scaling", 1.0)
        self.scale = float(scaling or 1.0)  # cos/sin come multiplied by it (YaRN, LongRoPE): a rotation has none

    def cos_sin(self, positions, like):
        """cos, sin [1, len(positions), d_rot] in float32 (positions: a 1-D long tensor; negative is fine)."""
        import torch

        args = (like.float(), positions.to(like.device)[None])
        cos, sin = self.embedding(*args, self.layer_type) if self.layer_type is not None else self.embedding(*args)
        return cos.float() / self.scale, sin.float() / self.scale

    def rotate(self, x, positions):
        """x [..., n, d] each row rotated by its own offset positions [..., n] (broadcast over x's leading dims);
        1-D positions [n]: the same offsets for every leading index (one cos/sin for all heads)."""
        import torch

        if positions.dim() == 1 and x.dim() == 3 and positions.shape[0] == x.shape[1]:
            cos, sin = self.cos_sin(positions, x)  # [1, n, d_rot]
            moved, _ = self.apply(x[None].float(), x[None, :1].float(), cos, sin)
            return moved[0].to(x.dtype)
        shape = x.shape
        offsets = positions.expand(shape[:-1]).reshape(-1)
        cos, sin = self.cos_sin(offsets, x)  # [1, M, d_rot]
        flat = x.reshape(-1, 1, 1, shape[-1]).float()  # one row per entry: [M, 1, 1, d]
        moved, _ = self.apply(flat, flat, cos[0][:, None], sin[0][:, None])
        return moved.reshape(shape).to(x.dtype)

    def mean_matrix(self, start: int, count: int, d: int, device):
        """The rotation matrix averaged over positions start … start + count − 1: [d, d] float32."""
        import torch

        eye = torch.eye(d, device=device)[None, :, None, :].expand(1, d, count, d)  # row i = e_i at every position
        cos, sin = self.cos_sin(torch.arange(start, start + count, device=device), eye)
        columns, _ = self.apply(eye, eye, cos, sin)  # [1, d, count, d]: R(p)·e_i
        return columns[0].mean(dim=1).T


def rotary_embedding(model):
    """The model's rotary module (the decoder's `rotary_emb`, whatever the decoder is called), or None."""
    return next((m for m in model.modules() if type(m).__name__.endswith("RotaryEmbedding")), None)


class FixedPositions(Exception):
    """The model's keys cannot be moved to other positions (the message says why)."""


def layer_rotary(model, module):
    """The layer's LayerRotary, or None when the layer applies no rotary (NoPE). Raises FixedPositions when
    the model has none to move keys with (learned absolute positions) or its frequencies change with the
    length (dynamic NTK)."""
    apply = getattr(sys.modules.get(type(module).__module__), "apply_rotary_pos_emb", None)
    embedding = rotary_embedding(model)
    if apply is None or embedding is None:
        raise FixedPositions("this model has no rotary embedding: its positions are baked into each cached K/V")
    if not getattr(module, "use_rope", True):  # SmolLM3's NoPE layers (use_rope = 0): nothing to move
        return None
    layer_type = None
    if "layer_type" in inspect.signature(embedding.forward).parameters:  # Gemma 3: frequencies per layer type
        types = getattr(module.config, "layer_types", None)
        layer_type = types[module.layer_idx] if types else None
    rope_type = getattr(embedding, "rope_type", "default")
    if (rope_type.get(layer_type) if isinstance(rope_type, dict) else rope_type) == "dynamic":
        raise FixedPositions("its rotary frequencies change with the length (dynamic NTK): no fixed rotation moves a key")
    return LayerRotary(apply, embedding, layer_type)


def layer_rotaries(model) -> list:
    """Per attention layer its LayerRotary, or None for a layer without rotary; raises FixedPositions."""
    from .seam import attention_layers

    return [layer_rotary(model, module) for module in attention_layers(model)]
