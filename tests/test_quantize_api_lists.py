"""The Api calls behind the UI's format selects (issue 34): the list of formats with their bits, and the Cache
Profile's presets sized for a format's blocks."""
import pytest

from backend.api import Api


@pytest.fixture(scope="module")
def api():
    return Api()  # no model loaded: the profile's default is GPT-2 small (12 layers × 12 heads × 64)


def test_the_format_list_is_the_backends_with_each_layouts_bits(api):
    from backend.quantize import EXAMPLES

    out = api.kv_formats({})
    assert out["ok"], out
    bits = {f["name"]: f["bits"] for f in out["formats"]}
    assert list(bits) == list(EXAMPLES)
    # llama.cpp's blocks of 32: q8_0 = 32 bytes + an fp16 scale, q4_0 = 16 bytes + the scale; q4_1 adds an fp16 min
    assert bits["q8_0"] == [34 * 8 / 32] * 2 and bits["q4_0"] == [18 * 8 / 32] * 2 and bits["q4_1"] == [20 * 8 / 32] * 2
    assert bits["kivi-2"] == [2 + 32 / 128, 2 + 32 / 32]  # keys per channel over 128 tokens, values per token over 32
    assert bits["f16"] == [16, 16] and bits["fp8-e4m3"] == [8, 8]


def test_presets_take_the_formats_bytes_per_token(api):
    plain = api.profile_presets({"length": 1000, "block_size": 16})
    q4 = api.profile_presets({"length": 1000, "block_size": 16, "kv_format": "q4_0"})
    assert plain["bytes_per_token"] == 12 * 12 * 64 * 2 * 2  # fp16
    assert q4["bytes_per_token"] == 12 * 12 * 64 * 2 * 18 // 32  # two q4_0 blocks of 18 bytes per 32 values
    assert "with its KV in q4_0" in q4["bytes_per_token_source"]
    # The Constrained tiers hold shares of the sequence's KV: smaller by the same factor (disk is unbounded).
    caps = [[t["capacity_bytes"] for t in r["presets"][1]["tiers"][:3]] for r in (plain, q4)]
    assert [b / a for a, b in zip(*caps)] == pytest.approx([q4["bytes_per_token"] / plain["bytes_per_token"]] * 3, rel=1e-3)


def test_a_bad_format_names_the_field(api):
    out = api.profile_presets({"kv_format": "q3_k"})
    assert not out["ok"] and out["error"]["field"] == "kv_format" and "q4_0" in out["error"]["message"]
