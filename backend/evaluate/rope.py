"""Moving cached keys to other positions under rotary embeddings (RoPE), without the tokens.

A rotary key cached at position p is R(p)·k, a rotation of each pair of dimensions by
p·θ_i. Rotations compose, R(q − p)·R(p) = R(q), so a key moves from p to q by one more
rotation by q − p. StreamingLLM's in-cache positions need exactly this after every
eviction (the keys behind the evicted one move down by one); NVIDIA kvpress's
KeyRerotationPress does the same. Values carry no position and stay as they are.
"""


def rotary_frequencies(model):
    """θ_i (the model's inverse frequencies), or None when the model has no rotary embedding.

    Rotary types whose frequencies change with the length (dynamic NTK) are not a fixed
    rotation: they are refused rather than moved wrongly.
    """
    for module in model.modules():
        inv_freq = getattr(module, "inv_freq", None)
        if inv_freq is not None:
            if getattr(module, "rope_type", "default") == "dynamic":
                return None
            return inv_freq.detach().float()
    return None


def rotate_half(x):
    """The same pairing of dimensions as transformers' Llama-family rotary code."""
    import torch

    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def rerotate(keys, delta, inv_freq):
    """Keys [..., n, d] rotated by delta [..., n] positions (delta broadcast over the leading dims).

    Only the first 2·len(θ) dimensions rotate (partial rotary models leave the rest as is).
    """
    import torch

    rot = 2 * inv_freq.shape[0]
    angle = delta[..., None].to(torch.float32) * inv_freq.to(keys.device)  # [..., n, d_rot/2]
    angle = torch.cat((angle, angle), dim=-1)
    part = keys[..., :rot].float()
    moved = (part * angle.cos() + rotate_half(part) * angle.sin()).to(keys.dtype)
    if rot == keys.shape[-1]:
        return moved
    return torch.cat((moved, keys[..., rot:]), dim=-1)
