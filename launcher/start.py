"""Entry point of the single-file build: unpack the app once (install.py), then run it from there.

The splash screen (build.spec's Splash) shows while PyInstaller unpacks this small launcher
(~0.3 s). For the window it stays up until the app's window shows: the app gets the splash's
port in SINKVIS_SPLASH_PORT and closes it (main.py). For --self-test, --serve, --help and the CLI
subcommands it is closed at once. While a first start unpacks, it shows the progress.
"""
import json
import os
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

from launcher import carchive, install, payload

NOT_WINDOW = {"--self-test", "--serve", "-h", "--help"}


def opens_window(args: list) -> bool:
    """main.py's rule: no subcommand (a bare word) and none of the flags that run without a window."""
    return not any(a in NOT_WINDOW or not a.startswith("-") for a in args)


class Splash:
    """PyInstaller's splash screen, driven with the protocol of its pyi_splash module: text commands
    end with '\\r'; the splash closes when a connection sends '\\x04' or closes."""

    def __init__(self):
        # pyi_splash is not imported: it would take the port out of the environment and close the
        # splash when this process execs the app.
        self.port = os.environ.pop("_PYI_SPLASH_IPC", "0")
        self._sock, self._shown = None, 0.0

    def _connect(self):
        if self._sock is None and self.port not in ("", "0"):
            try:
                self._sock = socket.create_connection(("127.0.0.1", int(self.port)), timeout=1.0)
            except (OSError, ValueError):
                self.port = "0"
        return self._sock

    def text(self, message: str) -> None:
        sock = self._connect()
        if sock is not None:
            try:
                sock.sendall(f"update_text({message})\r".encode("utf-8"))
            except OSError:
                pass

    def progress(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self._shown > 0.25 or done == total:
            self._shown = now
            self.text(f"First start of this version: unpacking {done * 100 // max(total, 1)} % (once)")

    def close(self) -> None:
        sock = self._connect()
        if sock is not None:
            try:
                sock.sendall(b"\x04")
            except OSError:
                pass
            sock.close()
        self._sock, self.port = None, "0"

    def keep_across_exec(self) -> None:
        """Our connection must outlive exec: its closing would close the splash before the window shows."""
        if self._sock is not None:
            os.set_inheritable(self._sock.fileno(), True)


def app_environment(splash_port: str) -> dict:
    """The environment for the app: without the launcher's PyInstaller variables (the app is a
    PyInstaller program of its own, which would otherwise take itself for our child) and with the
    library path the user had."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("_PYI_")}
    original = env.pop("LD_LIBRARY_PATH_ORIG", None)
    if original is not None:
        env["LD_LIBRARY_PATH"] = original
    else:
        env.pop("LD_LIBRARY_PATH", None)
    if splash_port not in ("", "0"):
        env["SINKVIS_SPLASH_PORT"] = splash_port
    return env


def main() -> int:
    args = sys.argv[1:]
    splash = Splash()
    if opens_window(args):
        splash.text("Starting SinkVis…")  # instead of the last file name the bootloader unpacked
    else:
        splash.close()
    info = json.loads((Path(sys._MEIPASS) / "payload.json").read_text(encoding="utf-8"))
    executable = sys.executable
    root = install.cache_root()
    said = []

    def progress(done: int, total: int) -> None:
        if not said:  # the terminal's feedback (macOS has no splash): once, on a first start only
            said.append(True)
            print(f"sinkvis: first start of this build: unpacking {total / 1e6:.0f} MB into {root} (once)",
                  file=sys.stderr, flush=True)
        splash.progress(done, total)

    try:
        offset, length = carchive.find_entry(executable, info["entry"])
        in_use = install.hold_in_use(root, info["sha256"])
        folder, unpacked = install.install(lambda: payload.Slice(executable, offset, length), info["sha256"],
                                           info["unpacked_bytes"], root, progress=progress)
    except (install.InstallError, carchive.ArchiveError) as exc:
        print(f"sinkvis: cannot unpack the app into {root}: {exc}", file=sys.stderr)
        return 1
    except zipfile.BadZipFile as exc:  # a member's CRC-32 does not match: the file itself is damaged
        print(f"sinkvis: {executable} is damaged ({exc}); download or build it again.", file=sys.stderr)
        return 1
    except OSError as exc:  # e.g. a read-only home folder
        print(f"sinkvis: cannot unpack the app into {root}: {exc}. Set SINKVIS_APP_DIR to a folder you can "
              f"write to.", file=sys.stderr)
        return 1
    if unpacked:
        splash.text("Starting SinkVis…")
        install.remove_old_builds(root, keep=info["sha256"])
    app = str(folder / info["exe"])
    env = app_environment(splash.port)
    if os.name == "nt":  # no exec on Windows: wait for the app and pass its exit code on
        child = subprocess.Popen([app, *args], env=env)
        while True:
            try:
                return child.wait()
            except KeyboardInterrupt:  # Ctrl+C reaches the app too: let it decide, keep waiting
                continue
    os.set_inheritable(in_use, True)  # keeps this build marked in use while the app runs
    splash.keep_across_exec()
    os.execve(app, [app, *args], env)
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main())
