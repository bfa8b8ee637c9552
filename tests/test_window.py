"""The real desktop window: pywebview + Qt WebEngine (offscreen), the js_api bridge end to end."""
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def test_window_opens_and_the_bridge_works():
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "QTWEBENGINE_CHROMIUM_FLAGS": "--no-sandbox"}
    proc = subprocess.run([sys.executable, str(HERE / "window_probe.py")], env=env, capture_output=True, text=True, timeout=240)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("PROBE ")]
    assert lines, proc.stdout[-2000:] + proc.stderr[-3000:]
    report = json.loads(lines[-1][len("PROBE "):])
    assert "error" not in report, report
    assert report["title"].startswith("SinkVis")
    # only the methods meant for the UI cross the bridge: no _state, no internals
    assert "ping" in report["exposed"] and "load_model" in report["exposed"]
    assert not any(name.startswith("_") for name in report["exposed"])
    assert report["ping"] == {"ok": True, "pong": True}
    assert report["load_state"] == "done"
    att = report["attention"]
    assert att["ok"] and att["n"] == len(att["tokens"]) and len(att["matrix"]) == att["n"]
    assert not report["garbage"]["ok"] and report["garbage"]["error"]["message"]
    # The window's page drew with the backend's labels table: the built-ins the same as in the browser.
    from backend.labels import label_table

    labels = report["labels"]["labels"]
    assert {k: v for k, v in labels.items() if not v["user"]} == label_table()
    assert report["page_labels"] == str(len(labels))
    assert proc.returncode == 0
