"""Model loads against hostile folders (issue #13, items 1–3), with real tiny GPT-2 models built from
a config in a temporary folder:

1. the size comes from the config, before anything is allocated (an absurd config with a tiny weights
   file is refused in a child process whose peak memory is measured); weights that do not match the
   config are refused; Cancel stops a load inside transformers' weight loop within seconds, frees the
   half-built model, and the next load is accepted at once;
2. configs that make no sense are a named `bad_model` and the previous model stays;
3. every file read from a model folder is a regular file within a size limit (a /dev/zero link, a FIFO,
   a 200 MB tokenizer), for loads and for the Local list.
The child processes run under an address-space limit, so a regression fails the test instead of
taking the machine down."""
import gc
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import ROOT, load, wait_job

DEMO = ROOT / "assets" / "demo-model"


def tiny_gpt2(folder: Path, **config) -> Path:
    """A real GPT-2 built from a config (random init) with the demo model's tokenizer."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    folder.mkdir(parents=True, exist_ok=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (DEMO / name).is_file():
            shutil.copy(DEMO / name, folder / name)
    torch.manual_seed(0)
    settings = dict(n_layer=2, n_head=4, n_embd=64, n_positions=128, vocab_size=4096, bos_token_id=0, eos_token_id=0)
    GPT2LMHeadModel(GPT2Config(**{**settings, **config})).save_pretrained(folder)
    return folder


def edit_config(folder: Path, **changes) -> Path:
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.fixture(scope="module")
def small_dir(tmp_path_factory):
    return tiny_gpt2(tmp_path_factory.mktemp("small"))


@pytest.fixture(scope="module")
def small_api(small_dir):
    """One Api with the small model loaded, shared by the cases that must leave it in place."""
    from backend.api import Api

    instance = Api()
    assert load(instance, small_dir, device="cpu")["state"] == "done"
    yield instance
    instance._state.jobs.cancel_all()


def copy_of(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


# A child process: load each folder through the Api, report code, seconds and peak-RSS growth (VmHWM).
CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, {root!r}); sys.path.insert(0, {tests!r})
from helpers import load
from backend.api import Api

def mb(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024

api = Api()
assert load(api, "demo", device="cpu")["state"] == "done"  # torch, transformers and a model: the baseline
limit = int((mb("VmSize:") + {headroom_mb}) * 2**20)
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))  # a regression dies with MemoryError, not the machine
out = []
for case, call in {cases!r}:
    base, started = mb("VmHWM:"), time.perf_counter()
    if call == "load":
        status = load(api, case, device="cpu")
        error = status.get("error") or {{}}
    else:
        answer = api.local_models({{"folder": case}} if case else {{}})
        error = answer.get("error") or {{"ids": [m["id"] for m in answer.get("models", [])]}}
    out.append({{"case": case, "call": call, "code": error.get("code"), "message": error.get("message", ""),
                "ids": error.get("ids"), "seconds": round(time.perf_counter() - started, 2),
                "grew_mb": round(mb("VmHWM:") - base, 1), "model": api.model_info().get("source")}})
print(json.dumps(out))
"""


def run_child(cases, headroom_mb=1500, env=None, timeout=240):
    code = CHILD.format(root=str(ROOT), tests=str(ROOT / "tests"), cases=[(str(c), k) for c, k in cases],
                        headroom_mb=headroom_mb)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                         env={**os.environ, **(env or {})})
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- one child process for the cases that would take the machine down if they regressed -------

def _hostile_folders(tmp_path: Path, small_dir: Path) -> tuple[list, dict]:
    """(calls for the child, the HF cache env). Item 1: absurd configs; item 3: files that are not regular or too big."""
    base = tiny_gpt2(tmp_path / "one-layer", n_layer=1, n_embd=16, n_head=2, n_positions=64)
    # The attack: 400 layers × 2048 wide over a 1-layer, 16-wide weights file (before: 414 MB → 4 GB in 16 s).
    huge = edit_config(copy_of(base, tmp_path / "huge"), n_layer=400, n_embd=2048, n_head=16)
    endless = edit_config(copy_of(base, tmp_path / "endless"), n_layer=1_000_000_000)
    calls = [(huge, "load"), (endless, "load")]

    folders = {}
    for name, target in (("config.json", "/dev/zero"), ("tokenizer.json", "/dev/zero"),
                         ("generation_config.json", "/dev/zero"), ("tokenizer_config.json", "/dev/urandom")):
        folder = copy_of(small_dir, tmp_path / f"link-{name}")
        (folder / name).unlink(missing_ok=True)
        (folder / name).symlink_to(target)
        folders[f"link-{name}"] = folder
    fifo = copy_of(small_dir, tmp_path / "fifo-config")
    (fifo / "config.json").unlink()
    os.mkfifo(fifo / "config.json")  # opening it for reading would wait for a writer for ever
    folders["fifo-config"] = fifo
    big = copy_of(small_dir, tmp_path / "big-tokenizer")
    with open(big / "tokenizer.json", "r+b") as f:
        f.truncate(200 * 2**20)  # sparse: 200 MB of zeros, over the 128 MiB a tokenizer file may be
    folders["big-tokenizer"] = big
    weights = copy_of(small_dir, tmp_path / "weights-link")
    (weights / "model.safetensors").unlink()
    (weights / "model.safetensors").symlink_to("/dev/zero")
    folders["weights-link"] = weights

    # The HF cache holds a model whose config.json is a /dev/zero link; the Local list must still come back.
    cache = tmp_path / "hf" / "hub"
    snapshot = cache / "models--evil--zero" / "snapshots" / "0123456789abcdef0123456789abcdef01234567"
    snapshot.mkdir(parents=True)
    (cache / "models--evil--zero" / "refs").mkdir()
    (cache / "models--evil--zero" / "refs" / "main").write_text("0123456789abcdef0123456789abcdef01234567")
    (snapshot / "config.json").symlink_to("/dev/zero")
    (snapshot / "model.safetensors").symlink_to(small_dir / "model.safetensors")

    calls += [(folders["link-config.json"], "local"), ("", "local")] + [(f, "load") for f in folders.values()]
    return calls, {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_CACHE": str(cache)}


@pytest.fixture(scope="module")
def child_results(tmp_path_factory, small_dir):
    calls, env = _hostile_folders(tmp_path_factory.mktemp("hostile"), small_dir)
    results = run_child(calls, env=env)
    for r in results:
        name = Path(r["case"]).name or "(HF cache scan)"
        print(f"\n[load figures] {r['call']} {name}: {r['code'] or r['ids']} in {r['seconds']} s, "
              f"peak RSS grew {r['grew_mb']} MB")
    return {(Path(r["case"]).name, r["call"]): r for r in results}


# --- item 1: sized from the config; weights must match it; Cancel works ------------------------

def test_absurd_configs_are_refused_before_anything_is_allocated(child_results):
    cases = [child_results[(name, "load")] for name in ("huge", "endless")]
    for r in cases:
        assert r["model"] == "demo"  # the previous model stays in use
        assert r["grew_mb"] < 150, r  # nothing the config describes was allocated
    huge, endless = cases
    assert huge["code"] == "too_big" and "billion parameters" in huge["message"]
    assert endless["code"] == "too_big" and endless["seconds"] < 5
    # (a config that fits but whose weights hold fewer layers: test_weights_that_do_not_match_the_config_are_refused)


@pytest.mark.parametrize("changes, words", [
    ({"n_embd": 32, "n_head": 4}, "in the weights but"),           # same names, other shapes
    ({"n_layer": 3}, "no weights"),                                 # a layer more than the weights have
    ({"vocab_size": 5000}, "in the weights but"),
])
def test_weights_that_do_not_match_the_config_are_refused(small_api, small_dir, tmp_path, changes, words):
    api = small_api
    before = api._state.model
    status = load(api, edit_config(copy_of(small_dir, tmp_path / "m"), **changes), device="cpu")
    assert status["state"] == "error" and status["error"]["code"] == "bad_weights", status
    assert words in status["error"]["message"] and status["error"]["field"] == "source"
    assert api._state.model is before and api.attention({"text": "still here"})["ok"]


@pytest.fixture(scope="module")
def many_tensors_dir(tmp_path_factory):
    """300 narrow layers: 3,604 tensors, so transformers' per-tensor loop runs for seconds on a busy machine."""
    return tiny_gpt2(tmp_path_factory.mktemp("deep"), n_layer=300, n_head=2, n_embd=8, n_positions=64)


def _models_alive(layers: int) -> int:
    from transformers import PreTrainedModel

    def is_live_model(o) -> bool:
        try:  # gc also lists weak proxies whose object is gone: touching them raises ReferenceError
            return (isinstance(o, PreTrainedModel) and getattr(o.config, "n_layer", 0) == layers
                    and str(next(o.parameters()).device) != "meta")
        except ReferenceError:
            return False

    gc.collect()
    return sum(1 for o in gc.get_objects() if is_live_model(o))


def test_cancel_stops_a_load_inside_the_weights_and_frees_it(api, small_dir, many_tensors_dir):
    assert load(api, small_dir, device="cpu")["state"] == "done"
    before = api._state.model
    job = api.load_model({"source": str(many_tensors_dir), "device": "cpu"})["job_id"]
    deadline = time.time() + 120
    while time.time() < deadline:
        status = api.job_status({"job_id": job})
        if status["state"] != "running" or status.get("tensors_done", 0) >= 1:
            break
        time.sleep(0.005)
    assert status["state"] == "running" and status.get("tensors_total", 0) > 3000, status
    asked = time.perf_counter()
    assert api.cancel_job({"job_id": job})["ok"]
    final = wait_job(api, job, timeout=30)
    took = time.perf_counter() - asked
    print(f"\n[load figures] Cancel in the weights stage at tensor {status['tensors_done']} of "
          f"{status['tensors_total']}: stopped after {final.get('tensors_done')} in {took:.2f} s")
    assert final["state"] == "cancelled" and final["error"]["code"] == "cancelled"
    assert final["tensors_done"] < final["tensors_total"]
    assert took < 5.0  # "within a few seconds"; ~1.3 s measured on a busy 2-core machine
    assert api._state.model is before
    assert _models_alive(300) == 0  # the half-loaded model is gone
    again = api.load_model({"source": str(small_dir), "device": "cpu"})  # not "busy"
    assert again["ok"], again
    assert wait_job(api, again["job_id"])["state"] == "done"


def test_cancel_while_the_config_is_checked(api, many_tensors_dir):
    job = api.load_model({"source": str(many_tensors_dir), "device": "cpu"})["job_id"]
    deadline = time.time() + 60
    while time.time() < deadline:
        status = api.job_status({"job_id": job})
        if status["state"] != "running" or status["stage"] in ("Reading config", "Checking the config"):
            break
        time.sleep(0.002)
    asked = time.perf_counter()
    api.cancel_job({"job_id": job})
    final = wait_job(api, job, timeout=30)
    took = time.perf_counter() - asked
    print(f"\n[load figures] Cancel during '{status['stage']}': stopped in {took:.2f} s")
    assert final["state"] == "cancelled" and took < 5.0
    assert api.model_info() == {"ok": True, "loaded": False}


# --- item 2: nonsense configs ------------------------------------------------------------------

@pytest.mark.parametrize("changes, field", [
    ({"n_layer": -5}, "n_layer"),
    ({"n_layer": 0}, "n_layer"),
    ({"n_head": 0}, "n_head"),
    ({"n_layer": 2.5}, "n_layer"),
    ({"n_layer": "2"}, "n_layer"),
    ({"n_layer": True}, "n_layer"),
    ({"n_embd": 65}, "divide"),
    ({"vocab_size": 0}, "vocab_size"),
    ({"n_positions": -1}, "n_positions"),
    ({"n_embd": None}, "n_embd"),
])
def test_nonsense_configs_are_bad_model_and_keep_the_previous_model(small_api, small_dir, tmp_path, changes, field):
    api = small_api
    before = api._state.model
    status = load(api, edit_config(copy_of(small_dir, tmp_path / "m"), **changes), device="cpu")
    assert status["state"] == "error", status
    assert status["error"]["code"] == "bad_model", status["error"]
    assert field in status["error"]["message"] and status["error"]["field"] == "source"
    assert api._state.model is before
    assert api.attention({"text": "the previous model still answers"})["ok"]


# --- item 3: bounded reads of model-folder files -----------------------------------------------

def test_model_folder_files_must_be_regular_and_bounded(child_results):
    for r in child_results.values():
        assert r["seconds"] < 30 and r["grew_mb"] < 100, r
        assert r["model"] == "demo", r
    assert child_results[("link-config.json", "local")]["code"] == "not_a_model"
    scan = child_results[("", "local")]["ids"]
    assert "demo" in scan and "evil/zero" not in scan
    codes = {name: (r["code"], r["message"]) for (name, call), r in child_results.items() if call == "load"}
    for name in ("link-config.json", "fifo-config"):  # refused at once, without a read: "no config.json" is fair
        assert codes[name][0] in ("not_a_model", "bad_config"), (name, codes[name])
    for name in ("link-tokenizer.json", "link-generation_config.json", "link-tokenizer_config.json", "weights-link"):
        assert codes[name][0] == "bad_file" and "not a regular file" in codes[name][1], (name, codes[name])
    assert codes["big-tokenizer"][0] == "bad_file" and "128 MiB" in codes["big-tokenizer"][1]
