"""A tap on the shared model's attention function (backend/attention/seam.py) sees only its own
thread's forward: another job's forward running meanwhile (Live Stream, Evaluate) is neither
scored, nor reported as progress, nor broken. Found in CI with forward hooks before the seam: the
Cache Profile's Quest pass failed when another e2e job's forward ran through its hooks."""
import threading

import numpy as np
import torch

from backend.compress.methods import METHODS
from backend.compress.prefill import Prefill, Settings, attention_modules
from backend.attention.seam import tapped


def _other_thread_forward(loaded) -> dict:
    """One forward with no cache, as another job's, run in a new thread; returns its outcome."""
    outcome = {}

    def run():
        try:
            with torch.inference_mode():
                outcome["logits"] = loaded.model(input_ids=torch.tensor([[1, 2, 3]]), use_cache=False).logits
        except Exception as exc:  # what the other job would have seen
            outcome["error"] = exc

    worker = threading.Thread(target=run)
    worker.start()
    worker.join()
    return outcome


def test_a_tap_answers_its_own_threads_forward_only(demo_api):
    loaded = demo_api._state.model
    modules = attention_modules(loaded.model)
    calls = []

    def tap(call):
        calls.append(call.layer)
        return call.eager()

    with tapped(tap):
        assert "error" not in _other_thread_forward(loaded) and calls == []
        with torch.inference_mode():
            loaded.model(input_ids=torch.tensor([[1, 2, 3]]), use_cache=False)
    assert calls == list(range(len(modules)))


def test_a_prefill_is_unchanged_by_another_jobs_forward_in_the_middle(demo_api):
    """At the first layer's progress report another thread runs a whole forward through the same
    modules while the prefill's scoring hooks are on: that forward succeeds, and every method's
    scores and the progress reports are those of a prefill run alone."""
    loaded = demo_api._state.model
    ids = list(range(5, 69))
    scorers = {m: METHODS[m] for m in ("h2o", "snapkv", "knorm", "expected_attention")}
    alone_reports = []
    alone = Prefill(loaded, ids, scorers, Settings(sinks=4, window=8), lambda f, stage, **k: alone_reports.append(f))
    reports, other = [], {}

    def report(fraction, stage, **extra):
        reports.append(fraction)
        if len(reports) == 1:
            other.update(_other_thread_forward(loaded))

    mixed = Prefill(loaded, ids, scorers, Settings(sinks=4, window=8), report)
    assert "error" not in other, other.get("error")
    assert other["logits"].shape[:2] == (1, 3)
    assert reports == alone_reports
    for m in scorers:
        for a, b in zip(alone.scores[m], mixed.scores[m]):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
