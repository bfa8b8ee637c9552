"""The transformers steps every load shares: a tokenizer and the weights from_pretrained.

A folder load (load.py) and a GGUF load (gguf_load.py, which passes gguf_file=…) both
come here, so a broken tokenizer, unreadable weights or running out of memory get the
same named error whatever the format.
"""
import json
from pathlib import Path

from ..errors import Cancelled, UserError
from ..safe_read import check_folder_files


def load_tokenizer(path: Path, trust_remote_code: bool, **extra):
    from transformers import AutoTokenizer

    check_folder_files(path)  # every config, tokenizer and weight file there: a regular file within its size limit
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code, **extra)
    except PermissionError:
        raise UserError("unreadable", f"No permission to read the tokenizer files in {path}.", "source") from None
    except (OSError, ValueError, TypeError, json.JSONDecodeError) as exc:
        raise UserError("bad_tokenizer", f"The tokenizer in {path} is missing or broken ({str(exc)[:160]}); re-download the model.", "source") from None
    # transformers 5 builds an empty tokenizer when the files are missing instead of failing.
    if len(tokenizer) < 2:
        raise UserError("bad_tokenizer", f"No tokenizer files in {path} (tokenizer.json, vocab.json…); copy them in or re-download the model.", "source")
    return tokenizer


def load_weights(path: Path, dtype_name: str, device: str, trust_remote_code: bool, **extra):
    import torch
    from transformers import AutoModelForCausalLM

    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype_name), attn_implementation="eager",
                                                     trust_remote_code=trust_remote_code, low_cpu_mem_usage=True, **extra)
        model.to(device)
    except Cancelled:  # from the per-tensor hook: not a broken file
        raise
    except torch.OutOfMemoryError:
        free_device_memory(device)
        raise UserError("out_of_memory", f"Ran out of memory on {device} while loading; pick a lower precision, another device or a smaller model.", "source") from None
    except PermissionError:
        raise UserError("unreadable", f"No permission to read the weights in {path}.", "source") from None
    except MemoryError:
        raise UserError("out_of_memory", "Ran out of system memory while loading; pick a smaller model.", "source") from None
    except Exception as exc:  # noqa: BLE001 - safetensors, torch and transformers each raise their own types
        msg = str(exc)
        if "out of memory" in msg.lower():
            free_device_memory(device)
            raise UserError("out_of_memory", f"Ran out of memory on {device} while loading; pick a lower precision or a smaller model.", "source") from None
        raise UserError("bad_weights", f"The weights in {path} could not be loaded ({msg[:200]}); the files may be truncated — re-download them.", "source") from None
    model.eval()
    return model


def free_device_memory(device: str) -> None:
    import gc

    import torch

    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
