"""Quick Attention Test: the matrix is the model's own, sinks follow DESIGN.md."""
import math

import numpy as np
import torch



def test_matrix_matches_a_direct_forward(demo_api):
    text = "Attention sinks soak up the mass that a head has nowhere else to put."
    result = demo_api.attention({"text": text, "layer": -1, "head": 1})
    assert result["ok"], result
    loaded = demo_api._state.model
    ids = loaded.tokenizer(text)["input_ids"]
    assert result["token_ids"] == ids and ids[0] == loaded.tokenizer.bos_token_id
    assert result["tokens"] == [loaded.tokenizer.decode([i]) for i in ids]
    with torch.no_grad():
        out = loaded.model(torch.tensor([ids]), output_attentions=True)
    expected = out.attentions[-1][0, 1].numpy()
    matrix = np.array(result["matrix"])
    np.testing.assert_allclose(matrix, expected, atol=1e-5)
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0, atol=1e-4)
    assert np.all(np.triu(matrix, 1) == 0)


def test_mean_over_heads_and_all_layers(demo_api):
    text = "one two three four five six seven eight nine ten"
    per_head = [np.array(demo_api.attention({"text": text, "layer": 0, "head": h})["matrix"])
                for h in range(demo_api._state.model.spec["heads"])]
    mean = np.array(demo_api.attention({"text": text, "layer": 0})["matrix"])
    np.testing.assert_allclose(mean, np.mean(per_head, axis=0), atol=1e-5)
    every = demo_api.attention({"text": text, "aggregate": "all_layers"})
    assert every["ok"] and every["layer"] is None and every["head"] is None


def test_sinks_follow_the_design_definition(demo_api):
    text = "The Jargon File is a glossary of hacker slang, and its entries are short. " * 2
    result = demo_api.attention({"text": text, "layer": 4, "sink_threshold": 0.10})  # the demo's strongest sink layer
    matrix = np.array(result["matrix"])
    n = len(matrix)
    later = max(4, math.ceil(0.1 * n))  # a key needs max(4, 10% of the tokens) later queries to be called a sink
    expected = [j for j in range(n - later) if matrix[j + 1:, j].mean() >= 0.10]
    assert [s["position"] for s in result["sinks"]] == expected and 0 in expected
    for s in result["sinks"]:
        assert abs(s["score"] - matrix[s["position"] + 1:, s["position"]].mean()) < 1e-5
        assert s["token"] == result["tokens"][s["position"]]


def test_bad_inputs_name_the_field(demo_api):
    cases = [({"text": ""}, "text"), ({"text": "hi", "layer": 99}, "layer"), ({"text": "hi", "head": -1}, "head"),
             ({"text": "hi", "layer": "x"}, "layer"), ({"text": "word " * 5000}, "text"), ({"text": 5}, "text")]
    for params, field in cases:
        result = demo_api.attention(params)
        assert not result["ok"] and result["error"]["field"] == field, (params, result)


def test_no_model_is_a_clear_error(api):
    result = api.attention({"text": "hello"})
    assert not result["ok"] and result["error"]["code"] == "no_model" and "Model Hub" in result["error"]["message"]


def test_html_in_a_prompt_is_just_tokens(demo_api):
    payload = "<img src=x onerror=alert(1)>"
    result = demo_api.attention({"text": payload})
    assert result["ok"] and "".join(result["tokens"][1:]) == payload
