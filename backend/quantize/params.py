"""The KV-format parameters Evaluate and Retrieval share: kv_format (K and V), or kv_format_k / kv_format_v
each, and intact_sinks (IntactKV: the first positions stay in full precision)."""
from ..errors import UserError
from ..validate import integer


def kv_format_params(params: dict, loaded) -> tuple[object, dict]:
    """(the KVFormat or None, the settings to echo: names and intact_sinks). loaded: None checks the names only."""
    from .formats import kv_format

    names = {}
    for name in ("kv_format", "kv_format_k", "kv_format_v"):
        value = params.get(name)
        if value not in (None, "", "none"):
            if not isinstance(value, str):
                raise UserError("bad_input", f"{name} must be a format name such as q8_0, q4_0, kivi-2 or fp8-e4m3.",
                                name)
            names[name] = value
    fmt = kv_format(names.get("kv_format"), names.get("kv_format_k"), names.get("kv_format_v"))
    intact = integer(params, "intact_sinks", 0, lo=0, hi=loaded.context_length if loaded is not None else 1 << 20)
    if fmt is None and intact:
        raise UserError("bad_input", "intact_sinks keeps the first tokens out of a quantized cache: give a "
                        "kv_format too, or set intact_sinks to 0.", "intact_sinks")
    if fmt is not None and loaded is not None:
        fmt.check(loaded.spec["head_dim"])
    named = fmt.settings() if fmt is not None else {"kv_format": None, "kv_format_k": None, "kv_format_v": None}
    return fmt, {**named, "intact_sinks": intact}
