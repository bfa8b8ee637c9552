"""Which files of a repo a causal LM needs: config, tokenizer, weights — one weight format only."""
from fnmatch import fnmatch

WANTED = ["*.json", "*.safetensors", "*.bin", "*.txt", "*.model", "*.tiktoken", "tokenizer*", "*.py", "*.jinja"]
# Other runtimes' copies of the same weights, and folders of them: never needed here.
SKIPPED = ["*.onnx", "*.onnx_data", "*.tflite", "*.msgpack", "*.h5", "*.ot", "*.gguf", "*.mlmodel", "*.pt", "*.pth",
           "*.ckpt", "onnx/*", "coreml/*", "openvino/*", "*/onnx/*", "training_args.bin", "optimizer.bin"]
_WEIGHTS = (".safetensors", ".bin")


def wanted_files(names) -> list[str]:
    """The repo files to download; *.bin weights only when the repo has no safetensors."""
    names = [n for n in names if any(fnmatch(n, p) for p in WANTED) and not any(fnmatch(n, p) for p in SKIPPED)]
    if any(n.endswith(".safetensors") for n in names):
        names = [n for n in names if not n.endswith(".bin")]
    # Weights in a subfolder (e.g. "original/", "fp8/") are an alternative copy; transformers reads the root.
    return sorted(n for n in names if "/" not in n or not n.endswith(_WEIGHTS))


def is_weight_file(name: str) -> bool:
    return name.endswith(_WEIGHTS)
