"""User prefill methods (#17's files gain score(layer, settings), backend/compress/user.py):
the shipped SnapKV file equals the built-in, and broken files get their named error."""
import textwrap

import numpy as np
import pytest

from backend.compress import prefill_answers, prefill_methods
from backend.compress import user as compress_user
from backend.eviction.custom_policies import PolicyFileError, PolicyRegistry
from helpers import ROOT

EXAMPLE = ROOT / "examples" / "policies" / "snapkv.py"


@pytest.fixture(scope="module")
def demo():
    from backend.models.load import load_model

    return load_model("demo", device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def ids(demo):
    from backend.defaults import bundled_text as bundled_eval_text

    return demo.tokenizer(bundled_eval_text("jargon"), verbose=False)["input_ids"]


@pytest.fixture
def registry(tmp_path):
    reg = PolicyRegistry(tmp_path / "policies", publish=True)
    yield reg
    compress_user.publish({})  # the prefill registry is process-wide: leave it as it was


@pytest.mark.parametrize("budget", [{"ratio": 0.5}, {"cache_size": 90}])
def test_the_snapkv_user_file_equals_the_builtin(registry, demo, ids, budget):
    loaded = registry.trust_file(EXAMPLE)
    assert loaded.name == "snapkv_file" and "snapkv_file" in prefill_methods()
    listing = registry.listing()
    assert [p["name"] for p in listing["prefill_methods"]] == ["snapkv_file"]
    assert "snapkv_file" not in [p["name"] for p in listing["policies"]]  # not an eviction rule
    out = prefill_answers(demo, ids[:160], ids[160:170], ids[170:173], ["snapkv", "snapkv_file"], **budget)
    for mine, builtin in zip(out["snapkv_file"]["kept"], out["snapkv"]["kept"]):
        assert np.array_equal(mine, builtin)
    assert out["snapkv_file"]["answer_logprob"] == out["snapkv"]["answer_logprob"]
    assert out["snapkv_file"]["generated"] == out["snapkv"]["generated"]


def test_an_adaptive_user_budget_is_honoured(registry, demo, ids, tmp_path):
    path = tmp_path / "norms.py"
    path.write_text(textwrap.dedent('''
        NAME = "value_norm"
        BUDGET = "adaptive"
        def score(layer, settings):
            return layer.values.norm(dim=-1)
    '''))
    registry.trust_file(path)
    out = prefill_answers(demo, ids[:160], ids[160:170], ids[170:173], ["value_norm"], ratio=0.5, max_new_tokens=1)
    for k in out["value_norm"]["kept"]:
        assert (k >= 0).sum() == k.shape[0] * 80


BROKEN = {
    "raises": ("def score(layer, settings):\n    return 1 / 0\n", "score_error", 3),
    "shape": ("def score(layer, settings):\n    return layer.keys\n", "bad_score", 2),
    "nan": ("import torch\ndef score(layer, settings):\n    return torch.full((layer.kv_heads, layer.n), float('nan'))\n",
            "bad_score", 3),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_broken_score_names_its_file_and_line(registry, demo, ids, tmp_path, case):
    body, code, line = BROKEN[case]
    path = tmp_path / f"{case}.py"
    path.write_text(f'NAME = "broken_{case}"\n' + body)
    registry.trust_file(path)
    with pytest.raises(PolicyFileError) as e:
        prefill_answers(demo, ids[:100], ids[100:105], ids[105:107], [f"broken_{case}"], ratio=0.5)
    assert e.value.code == code and e.value.file == str(path) and e.value.line == line, e.value.message


@pytest.mark.parametrize("decl, code", [('BUDGET = "pyramids"', "bad_declaration"), ('PROTECT = -1', "bad_declaration")])
def test_bad_declarations_and_built_in_names_are_refused(registry, tmp_path, decl, code):
    path = tmp_path / "bad.py"
    path.write_text(f'NAME = "bad_one"\n{decl}\ndef score(layer, settings):\n    return layer.keys[..., 0]\n')
    with pytest.raises(PolicyFileError) as e:
        registry.trust_file(path)
    assert e.value.code == code
    path.write_text('NAME = "knorm"\ndef score(layer, settings):\n    return layer.keys[..., 0]\n')
    with pytest.raises(PolicyFileError) as e:
        registry.trust_file(path)
    assert e.value.code == "name_taken"
