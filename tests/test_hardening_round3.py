"""Hardening, round 3 (issue 31, items 6–9): retrieval that evicts nothing, memory (Quest's k in the Cache Profile,
prefill_kept as a heavy job), sweeps (Cancel in-process, the results file), and edges (continuation of 1 token,
rounded ratios, Quest below a page, depths, a ratio that keeps nothing, scores that are not real tensors).

Each attack gets a named error (code, field, a message saying what to change) or the right answer; after each,
the model is still loaded and a small simulation on it runs."""
import os
import threading
import time

import numpy as np
import pytest
from helpers import load, wait_job

import backend.api.app as app_module
from backend.api import Api
from backend.errors import Cancelled, UserError

TEXT = ("The Jargon File is a glossary of hacker slang. It was started in 1975 and has been revised many times. "
        "Hackers use words in playful ways, and the file records them with care. ") * 3
CUSTOM = {"task": "custom", "needle": "The secret code is 4711.", "question": "What is the secret code?",
          "answer": "4711"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """An Api of its own with the demo model; sweeps write under a temporary exports folder."""
    mp = pytest.MonkeyPatch()
    mp.setattr(app_module, "EXPORT_DIR", tmp_path_factory.mktemp("exports"))
    api = Api()
    assert load(api, "demo")["state"] == "done"
    yield api
    api._state.jobs.cancel_all()
    mp.undo()


def still_works(api) -> None:
    """The model is still the demo model, and a small simulation on its attention runs."""
    assert api.model_info()["source"] == "demo"
    job = api.simulate({"trace": "model", "text": TEXT, "cache_size": 16, "window": 8, "policy": "all"})
    assert job["ok"], job
    status = wait_job(api, job["job_id"], timeout=120)
    assert status["state"] == "done", status
    assert {r["policy"] for r in status["result"]["results"]} >= {"full", "h2o", "streaming_llm"}
    assert all(r["tokens_processed"] == status["result"]["trace"]["length"] for r in status["result"]["results"])


def named(out: dict, code: str, field: str, *words: str) -> str:
    assert not out["ok"], out
    error = out["error"]
    assert error["code"] == code and error.get("field") == field, error
    for word in words:
        assert word in error["message"], error["message"]
    return error["message"]


# 6. Retrieval evicts nothing and says nothing ------------------------------------------------------------------

def test_retrieval_refuses_a_built_context_that_the_cache_holds_whole(demo):
    from backend.retrieval.tasks import TASKS

    haystack = "x" * 3000  # one "sentence" longer than any length: the context is the needle alone
    built = len(TASKS["custom"](demo._state.model.tokenizer, 200, 0.5, 0, False, haystack=haystack,
                                **{k: v for k, v in CUSTOM.items() if k != "task"}).context_ids)
    assert built < 32  # the length asked is 200; what is built is a few tokens
    out = demo.retrieval({**CUSTOM, "haystack": haystack, "lengths": [200], "depths": [0.5], "cache_size": 32})
    named(out, "retrieval_budget_not_below_context", "haystack", f"only {built} tokens", f"cache_size below {built}",
          "shorter sentences")
    # A built-in task's context is whole sentences too: C between what is built and the length is refused.
    pass_key = len(TASKS["pass_key"](demo._state.model.tokenizer, 96, 0.5, 0, False).context_ids)
    assert pass_key < 95
    out = demo.retrieval({"lengths": [96], "depths": [0.5], "cache_size": pass_key, "policy": ["h2o"]})
    named(out, "retrieval_budget_not_below_context", "cache_size", f"only {pass_key} tokens")
    still_works(demo)


def test_retrieval_reports_the_context_it_built(demo):
    from backend.retrieval.tasks import TASKS

    haystack = "The cat sat on the mat. The dog ran far away."
    job = demo.retrieval({**CUSTOM, "haystack": haystack, "lengths": [64, 96], "depths": [0.5], "cache_size": 16,
                          "policy": ["h2o"]})
    status = wait_job(demo, job["job_id"], timeout=300)
    assert status["state"] == "done", status
    tokenizer = demo._state.model.tokenizer
    expected = [len(TASKS["custom"](tokenizer, L, 0.5, 0, False, haystack=haystack,
                                    **{k: v for k, v in CUSTOM.items() if k != "task"}).context_ids) for L in (64, 96)]
    assert status["result"]["context_tokens"] == expected
    assert all(16 < n <= L for n, L in zip(expected, (64, 96)))
    assert [c["context_tokens"] for c in status["result"]["cells"] if c["policy"] == "h2o"] == expected


def test_cli_retrieval_prints_the_context_built(capsys):
    import main

    assert main.main(["retrieval", "--model", "demo", "--lengths", "96", "--depths", "0.5", "--cache-size", "16",
                      "--policy", "h2o"]) == 0
    printed = capsys.readouterr().out
    line = next(x for x in printed.splitlines() if x.startswith("context tokens built"))
    n = int(line.rsplit("→", 1)[1])
    assert 16 < n <= 96


# 7. Memory: Quest's k in the Cache Profile, prefill_kept as a heavy job -----------------------------------------

def _quest_profile(k):
    return {"trace": "model", "text": TEXT, "policy": "topk", "window": 2, "k": k, "fetch_rule": "quest_bound",
            "aggregate": "all_layers"}


def test_profile_quest_k_is_bounded_by_the_pages_of_the_context(demo):
    pages = demo._state.model.context_length // 16
    for k in (65_536, pages + 1):
        named(demo.profile(_quest_profile(k)), "bad_input", "k", f"{pages} pages", f"up to {pages}")
    status = wait_job(demo, demo.profile(_quest_profile(pages))["job_id"], timeout=120)
    assert status["state"] == "done", status
    assert status["result"]["summary"]["policy_settings"]["k"] == pages
    still_works(demo)


def test_quest_fetch_past_the_texts_pages_is_cut_to_them(demo):
    from backend.profile import quest_fetch

    loaded = demo._state.model
    ids = loaded.tokenizer(TEXT, add_special_tokens=True)["input_ids"]
    pages = len(ids) // 16
    whole = quest_fetch.fetch_sets(loaded, ids, pages, 16, None, None, "all_layers")
    big = quest_fetch.fetch_sets(loaded, ids, 4096, 16, None, None, "all_layers")
    assert big.shape == whole.shape == (len(ids), pages)
    assert np.array_equal(big, whole)
    t = len(ids) - 1  # the last step can fetch every finished page
    assert sorted(big[t].tolist()) == list(range(pages))


def test_quest_stage_checks_cancel_between_layers_and_chunks(demo):
    from backend.profile import quest_fetch

    loaded = demo._state.model
    ids = loaded.tokenizer(TEXT, add_special_tokens=True)["input_ids"]
    calls = []
    quest_fetch.fetch_sets(loaded, ids, 3, 16, None, None, "all_layers", check=lambda: calls.append(1))
    chunks = -(-len(ids) // quest_fetch.STEPS_PER_CHUNK)
    assert len(calls) == loaded.spec["layers"] * (1 + chunks)

    def cancel_on_the_third():
        calls.append(1)
        if len(calls) > 2:
            raise Cancelled()

    calls.clear()
    with pytest.raises(Cancelled):
        quest_fetch.fetch_sets(loaded, ids, 3, 16, None, None, "all_layers", check=cancel_on_the_third)
    assert len(calls) == 3  # it stopped at the check that raised


def test_prefill_kept_waits_for_a_heavy_slot(demo):
    from backend.jobs import MAX_HEAVY

    hogs = [demo.simulate({"length": 20_000_000, "policy": "all"})["job_id"] for _ in range(MAX_HEAVY)]
    try:
        deadline = time.time() + 30
        while any(demo.job_status({"job_id": j}).get("queued") for j in hogs) and time.time() < deadline:
            time.sleep(0.05)
        kept = demo.prefill_kept({"text": TEXT, "methods": ["snapkv"], "cache_size": 16})
        assert kept["ok"], kept
        time.sleep(0.5)
        status = demo.job_status({"job_id": kept["job_id"]})
        assert status["state"] == "running" and status.get("queued") is True and status["queue_position"] == 1, status
    finally:
        for j in hogs:
            demo.cancel_job({"job_id": j})
    status = wait_job(demo, kept["job_id"], timeout=120)
    assert status["state"] == "done", status
    assert [m["method"] for m in status["result"]["methods"]] == ["snapkv"]
    assert len(status["result"]["methods"][0]["kept"]) == 16
    still_works(demo)


# 8. Sweeps: Cancel in this process, and the results file -------------------------------------------------------

def test_in_process_sweep_cell_stops_within_two_seconds_of_cancel(demo):
    from backend.sweep import cells

    started = demo.sweep_start({"out": "cancel-in-process.jsonl", "kind": "retrieval", "models": ["demo"], "workers": 0,
                                "cache_sizes": "16", "retrieval": {"task": "pass_key", "lengths": [160, 192],
                                                                   "depths": [0, 0.2, 0.4, 0.6, 0.8, 1], "chunk": 1}})
    assert started["ok"], started
    deadline = time.time() + 120
    while not any(key[0] == "demo" for key in cells._models) and time.time() < deadline:
        time.sleep(0.05)  # the in-process "worker" has loaded its model: the first cell starts now
    time.sleep(1.5)
    assert demo.job_status({"job_id": started["job_id"]})["state"] == "running"
    asked = time.time()
    assert demo.sweep_cancel({"job_id": started["job_id"]})["ok"]
    status = wait_job(demo, started["job_id"], timeout=30)
    took = time.time() - asked
    assert status["state"] == "cancelled" and took < 2.0, (status["state"], took)
    still_works(demo)


def _bad_files(tmp_path) -> dict:
    """out → the words its error must say."""
    folder = tmp_path / "a-folder.jsonl"
    folder.mkdir()
    fifo = tmp_path / "fifo.jsonl"
    os.mkfifo(fifo)
    binary = tmp_path / "binary.jsonl"
    binary.write_bytes(b"\xff\xfe\x00garbage\n" * 10)
    zero = tmp_path / "zero.jsonl"
    zero.symlink_to("/dev/zero")
    return {folder: "is a folder", fifo: "is a pipe", binary: "is not UTF-8", zero: "is a device",
            "/dev/zero": "is a device"}


def test_cli_sweep_out_that_is_not_a_results_file_is_a_named_error(tmp_path, capsys):
    import main

    cases = _bad_files(tmp_path)
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked.jsonl"
        locked.write_text("")
        locked.chmod(0o444)
        cases[locked] = "cannot be written"
    for out, words in cases.items():
        got = {}
        args = ["sweep", "--model", "synthetic", "--kind", "simulate", "--synthetic-length", "2000",
                "--cache-sizes", "16", "--policy", "full,h2o", "--out", str(out), "--workers", "0"]
        thread = threading.Thread(target=lambda: got.setdefault("code", main.main(args)), daemon=True)
        thread.start()
        thread.join(60)
        assert not thread.is_alive(), f"{out}: the sweep hangs"
        err = capsys.readouterr().err
        assert got["code"] == 2 and words in err and "out" in err and ".jsonl" in err, (out, err[-800:])
    assert (tmp_path / "binary.jsonl").read_bytes() == b"\xff\xfe\x00garbage\n" * 10  # nothing appended to it


def test_api_sweep_files_that_are_not_results_files_are_named_errors(demo):
    from backend.api.sweep import sweep_dir

    folder = sweep_dir()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "garbage.jsonl").write_bytes(bytes(range(256)) * 40 + b"\n")
    (folder / "zero.jsonl").symlink_to("/dev/zero")
    (folder / "deep.jsonl").write_text("[" * 100_000 + "\n" + '{"key": "k", "x": 1}\n')
    named(demo.sweep_results({"file": "garbage.jsonl"}), "bad_file", "out", "is not UTF-8")
    deep = demo.sweep_results({"file": "deep.jsonl"})  # a line nested too deeply is not a row; the next one is
    assert deep["ok"] and deep["rows"] == [{"key": "k", "x": 1}], deep
    for name, words in (("garbage.jsonl", "is not UTF-8"), ("zero.jsonl", "is a device")):
        job = demo.sweep_start({"out": name, "kind": "simulate", "models": ["synthetic"], "workers": 0,
                                "cache_sizes": "16", "policies": ["full", "h2o"],
                                "texts": [{"name": "s", "synthetic": {"length": 2000}}]})
        assert job["ok"], job
        status = wait_job(demo, job["job_id"], timeout=60)
        assert status["state"] == "error" and status["error"]["code"] == "bad_file", status
        assert status["error"]["field"] == "out" and words in status["error"]["message"], status
    still_works(demo)


# 9. Edges ----------------------------------------------------------------------------------------------------

def test_prefill_evaluate_with_one_continuation_token(demo):
    from backend.compress import prefill_perplexity

    out = demo.evaluate({"protocol": "prefill", "text": TEXT, "context_tokens": 40, "continuation_tokens": 1,
                         "ratio": 0.5, "policy": ["knorm"]})
    named(out, "bad_input", "continuation_tokens", "at least 2", "prefill")
    # The protocol itself (a sweep cell can end up there): token 1 is the prefill's, the same for every method.
    loaded = demo._state.model
    ids = loaded.tokenizer(TEXT, add_special_tokens=True)["input_ids"]
    got = prefill_perplexity(loaded, ids, 40, 1, ["full", "knorm", "snapkv"], ratio=0.5)
    assert got["full"]["perplexity"] == got["knorm"]["perplexity"] == got["snapkv"]["perplexity"] > 1
    assert got["knorm"]["kl_vs_full"] == 0.0
    still_works(demo)


@pytest.mark.parametrize("ratio, shown", [(1e-7, "1e-07"), (0.9999999, "0.9999999"), (1.0, "1.0"), (0.0, "0.0")])
def test_sweep_ratios_are_checked_as_they_run(demo, ratio, shown):
    out = demo.sweep_start({"out": "ratios.jsonl", "kind": "prefill", "models": ["demo"], "ratios": [0.5, ratio]})
    message = named(out, "ratio_out_of_range", "ratios", f"ratio {shown}")
    assert ("rounded" in message) == (ratio in (1e-7, 0.9999999))


def test_sweep_ratio_rounding_keeps_what_is_checked():
    from backend.sweep.spec import _ratios

    assert _ratios([0.1234567, 0.5]) == [0.123457, 0.5]
    assert _ratios("0.0000006,0.9999994") == [1e-06, 0.999999]  # in range once rounded, as the cells run them


def test_quest_below_one_page_in_evaluate_is_refused_or_left_out_and_said(demo):
    named(demo.evaluate({"policy": ["quest"], "cache_size": 8}), "bad_input", "cache_size", "pages of 16",
          "at least 16")
    estimate = demo.evaluate_estimate({"cache_size": 8})
    assert estimate["ok"] and "quest" not in estimate["policies"], estimate
    assert any("Quest is left out" in w for w in estimate["warnings"])
    at_a_page = demo.evaluate_estimate({"cache_size": 16})
    assert "quest" in at_a_page["policies"] and not any("Quest" in w for w in at_a_page["warnings"])
    still_works(demo)


def test_depths_outside_0_1_are_printed_as_given(demo):
    message = named(demo.retrieval({"depths": [0.5, 1.0000001]}), "retrieval_depth_out_of_range", "depths")
    assert "Depth 1.0000001 is outside" in message
    out = demo.sweep_start({"out": "depths.jsonl", "kind": "retrieval", "models": ["demo"],
                            "retrieval": {"lengths": [96], "depths": [0, -1e-9]}})
    named(out, "retrieval_depth_out_of_range", "depths", "-1e-09")


def test_a_ratio_that_would_keep_nothing_keeps_one_and_says_so(demo):
    short = "The Jargon File is a glossary of hacker slang. It was started in 1975."
    status = wait_job(demo, demo.prefill_kept({"text": short, "methods": ["knorm", "snapkv"], "ratio": 0.99})["job_id"])
    assert status["state"] == "done", status
    n = status["result"]["n"]
    assert int(n * (1 - 0.99)) == 0  # kvpress's rounding would keep nothing at this length
    for m in status["result"]["methods"]:
        assert m["memory_tokens"] == 1.0 and len(m["kept"]) == 1, m
        assert "keeps 1" in m["note"] and "always keeps 0" not in m["note"], m["note"]
    still_works(demo)


def _scorer(result):
    import types

    module = types.ModuleType("odd_scores")
    module.score = lambda layer, settings: result(layer)
    module.protected = lambda settings: 0
    return module


@pytest.mark.parametrize("result, words", [
    (lambda layer: __import__("torch").ones(layer.kv_heads, layer.n, device="meta"), "a tensor on meta"),
    (lambda layer: [[1.0] * layer.n] * layer.kv_heads, "returned list"),
    (lambda layer: __import__("torch").ones(layer.kv_heads, layer.n, dtype=__import__("torch").complex64),
     "complex64"),
    (lambda layer: __import__("torch").ones(layer.n), "shape ["),
])
def test_scores_that_are_not_real_tensors_are_named(demo, monkeypatch, result, words):
    from backend.compress.methods import METHODS, Method

    monkeypatch.setitem(METHODS, "odd_scores", Method(_scorer(result), "uniform", "(test)"))
    status = wait_job(demo, demo.prefill_kept({"text": TEXT, "methods": ["odd_scores"], "cache_size": 8})["job_id"])
    assert status["state"] == "error", status
    error = status["error"]
    assert error["code"] == "bad_score" and error["field"] == "policy", error
    assert "'odd_scores'" in error["message"] and words in error["message"] and "shape [" in error["message"], error
    monkeypatch.undo()
    still_works(demo)
