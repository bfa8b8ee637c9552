"""Input checks shared by every Api method: each failure names the field and says what to change.

The bridge hands us whatever JSON (or garbage) the caller sent, so nothing here
trusts a type: bools are not ints, NaN is not a number, strings have a size limit.
Numbers given as text are parsed strictly: ASCII digits only ("²", "١٢", "1_000" and
"0x10" are not numbers here, although Python's int()/float() take some of them), and
at most MAX_DIGITS of them (int() refuses 4,301+ digits with a ValueError of its own).
"""
import math
import re

from .errors import UserError

MAX_TEXT = 200_000  # characters; a prompt longer than any context we can run
MAX_DIGITS = 30     # in a number given as text
_INTEGER_TEXT = re.compile(r"[+-]?[0-9]+")
_DECIMAL_TEXT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]{1,4})?")
_FLOAT_MAX = 1e300  # an int beyond this has no float (OverflowError), and no setting needs one


def _shown(value) -> str:
    """A number for a message: a huge int is described, not printed (str() refuses 4,301+ digits)."""
    if isinstance(value, int) and value.bit_length() > 100:
        return f"a number of about {int(value.bit_length() * 0.30103):,} digits"
    return f"{value:,}" if isinstance(value, int) else f"{value:g}"


def _number_text(value: str, name: str, pattern, what: str) -> str:
    """The stripped text if it is a plain ASCII number (pattern), else bad_input naming the field."""
    stripped = value.strip()
    if len(stripped) > MAX_DIGITS + 8 or not pattern.fullmatch(stripped):
        shown = stripped[:20] + ("…" if len(stripped) > 20 else "")
        raise UserError("bad_input", f"{name} must be a {what} written with the digits 0-9, at most {MAX_DIGITS} of them "
                        f"(got {shown!r}).", name)
    return stripped


def params_dict(value) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UserError("bad_input", "Expected an object of named settings.", "params")
    return value


def integer(params: dict, name: str, default=None, lo=None, hi=None, allow_none=False):
    value = params.get(name, default)
    if value is None and allow_none:
        return None
    if isinstance(value, str):
        value = int(_number_text(value, name, _INTEGER_TEXT, "whole number"))
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserError("bad_input", f"{name} must be a whole number.", name)
    if lo is not None and value < lo:
        raise UserError("bad_input", f"{name} must be at least {lo} (got {_shown(value)}).", name)
    if hi is not None and value > hi:
        raise UserError("bad_input", f"{name} must be at most {hi:,} (got {_shown(value)}).", name)
    return value


def number(params: dict, name: str, default=None, lo=None, hi=None):
    value = params.get(name, default)
    if isinstance(value, str):
        value = float(_number_text(value, name, _DECIMAL_TEXT, "number"))  # may be inf ("1e999"): refused just below
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > _FLOAT_MAX:
        raise UserError("bad_input", f"{name} must be at most {_FLOAT_MAX:g} in size (got {_shown(value)}).", name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UserError("bad_input", f"{name} must be a finite number.", name)
    value = float(value)
    if lo is not None and value < lo:
        raise UserError("bad_input", f"{name} must be at least {lo} (got {value:g}).", name)
    if hi is not None and value > hi:
        raise UserError("bad_input", f"{name} must be at most {hi} (got {value:g}).", name)
    return value


def text(params: dict, name: str, default=None, max_len=MAX_TEXT, allow_empty=False):
    value = params.get(name, default)
    if not isinstance(value, str):
        raise UserError("bad_input", f"{name} must be text.", name)
    # Lone surrogates cannot be encoded for a tokenizer: say so instead of crashing.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise UserError("bad_input", f"{name} contains invalid Unicode (a lone surrogate).", name) from None
    if "\x00" in value:
        raise UserError("bad_input", f"{name} contains a NUL character; remove it.", name)
    if len(value) > max_len:
        raise UserError("bad_input", f"{name} is too long ({len(value):,} characters; at most {max_len:,}).", name)
    if not allow_empty and not value.strip():
        raise UserError("bad_input", f"{name} is empty; type some text.", name)
    return value


def choice(params: dict, name: str, options, default=None):
    value = params.get(name, default)
    if value not in options:
        raise UserError("bad_input", f"{name} must be one of {', '.join(map(str, options))} (got {str(value)[:40]!r}).", name)
    return value


def flag(params: dict, name: str, default=False) -> bool:
    value = params.get(name, default)
    if not isinstance(value, bool):
        raise UserError("bad_input", f"{name} must be true or false.", name)
    return value
