"""torch and transformers, imported once, by whichever thread asks first.

The window preloads them in the background; a Load clicked meanwhile must wait for
that import rather than race it (transformers' lazy module is not safe to import
from two threads at once: the second sees a half-initialised module).
"""
import threading

_lock = threading.Lock()


def import_heavy() -> None:
    with _lock:
        import torch  # noqa: F401
        import transformers  # noqa: F401
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, DynamicCache  # noqa: F401
