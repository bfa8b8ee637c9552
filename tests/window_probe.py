"""Runs the real desktop window (Qt WebEngine, offscreen) and drives its js_api bridge from JavaScript.

Prints one JSON line: what the page saw through window.pywebview.api. Used by tests/test_window.py.
"""
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import main  # noqa: E402


def js_call(window, method, params, timeout=120.0):
    """Call an Api method from the page (the path the UI uses) and wait for the promise."""
    slot = f"__probe_{method}_{int(time.time() * 1e6)}"
    window.evaluate_js(f"window.pywebview.api.{method}({json.dumps(params)}).then(r => window.{slot} = JSON.stringify(r))")
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = window.evaluate_js(f"window.{slot} || null")
        if value:
            return json.loads(value)
        time.sleep(0.05)
    raise TimeoutError(method)


def probe(window, api):
    report = {"shown_after_s": round(time.perf_counter() - main.STARTED, 3)}
    try:
        deadline = time.time() + 30
        while not window.evaluate_js("!!(window.pywebview && window.pywebview.api && window.pywebview.api.ping)"):
            if time.time() > deadline:
                raise TimeoutError("js_api never appeared")
            time.sleep(0.05)
        report["title"] = window.evaluate_js("document.title")
        report["exposed"] = sorted(window.evaluate_js("Object.keys(window.pywebview.api)"))
        report["ping"] = js_call(window, "ping", {})
        job = js_call(window, "load_model", {"source": "demo"})
        while True:
            status = js_call(window, "job_status", {"job_id": job["job_id"]})
            if status["state"] != "running":
                break
            time.sleep(0.1)
        report["load_state"] = status["state"]
        report["attention"] = js_call(window, "attention", {"text": "<img src=x onerror=alert(1)> sinks", "layer": -1})
        report["garbage"] = js_call(window, "attention", {"text": 5, "layer": "lots"})
        report["labels"] = js_call(window, "policy_labels", {})  # the one labels table, as the browser gets it
        deadline = time.time() + 30
        while not window.evaluate_js("document.body.dataset.labels || null") and time.time() < deadline:
            time.sleep(0.1)
        report["page_labels"] = window.evaluate_js("document.body.dataset.labels || null")  # palette.js loaded it
    except Exception as exc:  # noqa: BLE001 - reported to the test
        report["error"] = repr(exc)
    finally:
        print("PROBE " + json.dumps(report), flush=True)
        window.destroy()


if __name__ == "__main__":
    sys.exit(main.run_window(probe=probe))
