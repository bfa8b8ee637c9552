"""SinkVis — the Attention Sink & KV Cache Visualizer.

    python main.py                 desktop window (pywebview)
    python main.py --serve         the same UI in your browser, on 127.0.0.1
    python main.py --self-test     headless check: demo model, one attention pass, JSON summary
    python main.py attention|stream|simulate|profile|evaluate|retrieval|sweep ...   CLI on the same backend

The window must appear fast, so this file imports only the standard library at the
top; torch and transformers load in the background once the window is showing.
"""
import argparse
import importlib
import json
import os
import sys
import threading
import time
from pathlib import Path

STARTED = time.perf_counter()
ROOT = Path(getattr(sys, "_MEIPASS", Path(__file__).resolve().parent))
UI_INDEX = ROOT / "ui" / "index.html"


class _FrozenNumbaCache:
    """Numba cache locator for the single-file build (see NUMBA_CACHE_LOCATOR_CLASSES below).

    The app runs from the folder the launcher unpacked it into (launcher/install.py), one per
    build; the kernels' compiled code goes to a user cache folder, keyed by the kernel's path
    inside the bundle (not the folder's name) and stamped with the executable: a second start
    reuses it, a new build recompiles.
    """

    def __init__(self, py_func, rel_path):
        self._lineno = py_func.__code__.co_firstlineno
        self._cache_path = os.path.join(os.environ["NUMBA_CACHE_DIR"], os.path.dirname(rel_path))

    @classmethod
    def from_function(cls, py_func, py_file):
        bundle = os.path.normpath(sys._MEIPASS)
        path = os.path.normpath(os.path.join(bundle, py_file))  # code filenames are relative when frozen
        return cls(py_func, os.path.relpath(path, bundle)) if path.startswith(bundle + os.sep) else None

    def ensure_cache_path(self):
        import tempfile

        os.makedirs(self._cache_path, exist_ok=True)
        tempfile.TemporaryFile(dir=self._cache_path).close()

    def get_cache_path(self):
        return self._cache_path

    def get_source_stamp(self):
        st = os.stat(sys.executable)
        return st.st_mtime, st.st_size

    def get_disambiguator(self):
        return str(self._lineno)


if getattr(sys, "frozen", False):  # set before numba is imported
    os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
                                                  / "sinkvis" / "numba"))
    os.environ.setdefault("NUMBA_CACHE_LOCATOR_CLASSES", "__main__._FrozenNumbaCache,UserProvidedCacheLocator")


def _parser() -> argparse.ArgumentParser:
    from backend.cli import SUBCOMMANDS

    parser = argparse.ArgumentParser(prog="sinkvis", description="Attention Sink & KV Cache Visualizer")
    parser.add_argument("--serve", action="store_true", help="serve the UI to a browser instead of opening a window")
    parser.add_argument("--host", default="127.0.0.1", help="--serve address (default 127.0.0.1; anything else exposes the app)")
    parser.add_argument("--port", type=int, default=8765, help="--serve port")
    parser.add_argument("--self-test", action="store_true", help="headless smoke test; prints JSON, exits 0 when all is well")
    parser.add_argument("--debug", action="store_true", help="open the web inspector in the window")
    sub = parser.add_subparsers(dest="command")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"backend.cli.{name}")
        except ModuleNotFoundError:
            continue  # a subcommand not built yet
        module.add_arguments(sub.add_parser(name, help=(module.__doc__ or "").strip().splitlines()[0]))
    return parser


def _preload_heavy_modules() -> None:
    """Import torch/transformers off the UI thread so the first user action doesn't wait for them."""
    try:
        from backend.heavy import import_heavy

        import_heavy()
    except Exception:  # noqa: BLE001 - the first real call will report the problem properly
        pass


def _load_demo_at_start(api) -> None:
    """The app opens with the demo model ready: start loading it as a job (the Model Hub shows its
    progress; ~0.3 s once torch is imported). SINKVIS_NO_DEMO=1 opens with no model."""
    if os.environ.get("SINKVIS_NO_DEMO"):
        return
    try:
        api.load_model({"source": "demo"})
    except Exception:  # noqa: BLE001 - the Model Hub's Load button still works and will say what is wrong
        pass


def _close_splash() -> None:
    """Close the single-file build's splash screen (launcher/start.py passes its port): one byte
    0x04 on a connection of our own is pyi_splash's "close" (PyInstaller/fake-modules/pyi_splash.py)."""
    port = os.environ.pop("SINKVIS_SPLASH_PORT", "")
    if not port:
        return
    import socket

    try:
        with socket.create_connection(("127.0.0.1", int(port)), timeout=1.0) as sock:
            sock.sendall(b"\x04")
    except (OSError, ValueError):
        pass  # the splash is gone already (it also closes when the app exits)


def run_window(debug: bool = False, probe=None) -> int:
    """Open the desktop window. probe(window, api), if given, runs on a thread once the window shows (tests)."""
    import webview

    from backend.api import Api

    if sys.platform.startswith("linux"):
        # Qt WebEngine refuses to start its sandbox as root; the app only loads its own local files.
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            os.environ.setdefault("QTWEBENGINE_CHROMIUM_FLAGS", "--no-sandbox")
    api = Api()
    window = webview.create_window("SinkVis — Attention Sink & KV Cache Visualizer", url=UI_INDEX.as_uri(),
                                   js_api=api, width=1440, height=920, min_size=(1024, 700), background_color="#0f1117")
    api._state.window = window

    def on_shown():
        _close_splash()
        print(f"window shown after {time.perf_counter() - STARTED:.2f} s", file=sys.stderr, flush=True)
        if os.environ.get("SINKVIS_EXIT_AFTER_SHOWN"):  # used by the start-time benchmark
            threading.Timer(float(os.environ["SINKVIS_EXIT_AFTER_SHOWN"]), window.destroy).start()
        if probe is not None:
            threading.Thread(target=probe, args=(window, api), name="probe", daemon=True).start()
        if probe is None:  # the window test drives its own loads
            # off the GUI thread; the load job imports torch/transformers in its own thread
            threading.Thread(target=_load_demo_at_start, args=(api,), name="demo-load", daemon=True).start()
        else:
            threading.Thread(target=_preload_heavy_modules, name="preload", daemon=True).start()

    window.events.shown += on_shown
    window.events.closing += lambda: api._state.jobs.cancel_all(wait=2.0)
    gui = "qt" if sys.platform.startswith("linux") else None
    webview.start(gui=gui, debug=debug, private_mode=True)
    return 0


def self_test() -> int:
    from backend.api import Api
    from backend.cli.common import CliError, check, wait_job

    api = Api()
    summary = {"ok": False}
    started = time.perf_counter()
    try:
        info = wait_job(api, check(api.load_model({"source": "demo"}))["job_id"], quiet=True)
        summary["model"] = {"source": info["source"], "device": info["device"], "dtype": info["dtype"], **info["spec"]}
        att = check(api.attention({"text": "The quick brown fox jumps over the lazy dog. " * 4, "layer": -1}))
        summary["attention"] = {"tokens": att["n"], "sinks": [s["position"] for s in att["sinks"]], "seconds": att["seconds"]}
        for extra in _extra_self_tests():
            summary.update(extra(api))
        summary["ok"] = True
    except CliError as exc:
        summary["error"] = str(exc)
    summary["seconds"] = round(time.perf_counter() - started, 3)
    print(json.dumps(summary, indent=2))
    return 0 if summary["ok"] else 1


def _extra_self_tests():
    """Checks contributed by other features (stream, eviction, profile) once they exist."""
    try:
        from backend.selftest import CHECKS
    except ImportError:
        return []
    return CHECKS


def main(argv=None) -> int:
    sys.path.insert(0, str(ROOT))
    args = _parser().parse_args(argv)
    if args.self_test:
        return self_test()
    if args.command:
        from backend.api import Api
        from backend.cli.common import CliError

        module = importlib.import_module(f"backend.cli.{args.command}")
        try:
            return module.run(args, Api())
        except CliError as exc:
            print(exc, file=sys.stderr)
            return 2
        except BrokenPipeError:  # `... --json | head`: the reader left; say nothing more
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
    if args.serve:
        from backend.api import Api
        from backend.serve import serve

        api = Api()
        _load_demo_at_start(api)
        return serve(api, host=args.host, port=args.port) or 0
    code = run_window(debug=args.debug)
    # The window is closed and its closing handler has cancelled every job. A job thread still inside
    # a C-level import (torch, loading the demo model at start) can hang the interpreter's shutdown —
    # seen in the single-file build — so leave at once: nothing is left to save (sweeps append each
    # cell as it finishes).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)


if __name__ == "__main__":
    import multiprocessing

    if sys.argv[1:2] == ["--sinkvis-worker"]:  # the frozen app as a worker process (backend/workers.py)
        from backend.workers import child_main

        sys.exit(child_main(int(sys.argv[2])))
    multiprocessing.freeze_support()  # sweep workers are spawned: in the single-file build they re-enter here
    sys.exit(main())
