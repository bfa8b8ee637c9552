"""The single-file build's launcher (launcher/): unpack once into a folder named by hash, reuse it,
survive interruption, damage and concurrent starts. On a small payload inside a small
PyInstaller-format archive; `make dist-test` covers the real binary."""
import json
import os
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time
import zipfile
from pathlib import Path

import pytest

from launcher import carchive, install, payload
from launcher.start import app_environment, opens_window

ROOT = Path(__file__).resolve().parents[1]
ENTRY = "sinkvis-app.zip"


def make_app(folder: Path, seed: int = 0) -> Path:
    """A small stand-in for PyInstaller's onedir output: an executable, libraries, data, a symlink."""
    (folder / "_internal" / "pkg").mkdir(parents=True)
    exe = folder / "sinkvis-app"
    # prints what it was started with; `hold` keeps it running (a copy of the app still open)
    exe.write_text('#!/bin/sh\necho "app $* port=${SINKVIS_SPLASH_PORT:-none} pyi=${_PYI_APPLICATION_HOME_DIR:-none}"\n'
                   '[ "$1" = hold ] && sleep 4\nexit 3\n')
    exe.chmod(0o755)
    (folder / "_internal" / "libweights.so").write_bytes(os.urandom(3 << 20))  # does not compress: stored
    (folder / "_internal" / "pkg" / "module.py").write_text(f"# build {seed}\n" + "x = 1\n" * 200_000)
    (folder / "_internal" / "empty.txt").write_bytes(b"")
    if os.name != "nt":
        os.symlink("libweights.so", folder / "_internal" / "libweights.so.1")
    return folder


def make_executable(tmp_path: Path, seed: int = 0) -> tuple:
    """(path, info): a file laid out like a PyInstaller executable — bootloader bytes, then the
    CArchive holding the zipped app uncompressed, its TOC and the cookie (PyInstaller's format)."""
    app = make_app(tmp_path / f"app{seed}", seed)
    zip_path = tmp_path / f"payload{seed}.zip"
    info = payload.pack(app, zip_path)
    data = zip_path.read_bytes()
    other = b"runtime option or module" * 10
    entries, body = [], b""
    for name, blob in (("pyi-runtime", other), (ENTRY, data)):
        entries.append((len(body), len(blob), name))
        body += blob
    toc = b""
    for offset, length, name in entries:
        raw = name.encode() + b"\0"
        raw += b"\0" * (-(carchive.TOC_ENTRY.size + len(raw)) % 16)
        toc += carchive.TOC_ENTRY.pack(carchive.TOC_ENTRY.size + len(raw), offset, length, length, 0, b"a") + raw
    archive_length = len(body) + len(toc) + carchive.COOKIE.size
    cookie = carchive.COOKIE.pack(carchive.COOKIE_MAGIC, archive_length, len(body), len(toc), 311, b"libpython3.11.so")
    exe = tmp_path / f"sinkvis{seed}"
    exe.write_bytes(b"\x7fELF bootloader" * 1000 + body + toc + cookie)
    return exe, info


def opener(exe: Path):
    offset, length = carchive.find_entry(exe, ENTRY)
    return lambda: payload.Slice(exe, offset, length)


def installed_files(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): os.lstat(p).st_size for p in folder.rglob("*")
            if not p.is_dir() or p.is_symlink()}


def test_pack_and_extract_keep_files_modes_and_links(tmp_path):
    exe, info = make_executable(tmp_path)
    with zipfile.ZipFile(opener(exe)()) as zf:
        kinds = {i.filename: i.compress_type for i in zf.infolist()}
    assert kinds["_internal/libweights.so"] == zipfile.ZIP_STORED  # random bytes: not worth deflating
    assert kinds["_internal/pkg/module.py"] == zipfile.ZIP_DEFLATED
    files = payload.extract(opener(exe), tmp_path / "out")
    source = installed_files(tmp_path / "app0")
    assert installed_files(tmp_path / "out") == source == files
    assert info["files"] == len(source)
    assert os.access(tmp_path / "out" / "sinkvis-app", os.X_OK)
    assert (tmp_path / "out" / "_internal" / "pkg" / "module.py").read_bytes() == \
        (tmp_path / "app0" / "_internal" / "pkg" / "module.py").read_bytes()
    if os.name != "nt":
        assert os.readlink(tmp_path / "out" / "_internal" / "libweights.so.1") == "libweights.so"
    # the same folder packs to the same bytes, so an unchanged build keeps its folder
    assert payload.pack(tmp_path / "app0", tmp_path / "again.zip")["sha256"] == info["sha256"]


def test_find_entry_reads_a_real_pyinstaller_archive(tmp_path):
    writers = pytest.importorskip("PyInstaller.archive.writers")  # requirements-build.txt
    blob = tmp_path / "blob.zip"
    blob.write_bytes(os.urandom(100_000))
    small = tmp_path / "small.txt"
    small.write_text("hello " * 1000)
    pkg = tmp_path / "archive.pkg"
    # 'a' is what build.spec's 'PKG' typecode becomes: stored, not unpacked by the bootloader
    writers.CArchiveWriter(str(pkg), [("small.txt", str(small), True, "x"), (ENTRY, str(blob), False, "a")],
                           pylib_name="libpython3.11.so.1.0")
    exe = tmp_path / "exe"
    exe.write_bytes(b"bootloader" * 5000 + pkg.read_bytes())
    offset, length = carchive.find_entry(exe, ENTRY)
    assert exe.read_bytes()[offset:offset + length] == blob.read_bytes()
    with pytest.raises(carchive.ArchiveError, match="compressed"):
        carchive.find_entry(exe, "small.txt")
    with pytest.raises(carchive.ArchiveError):
        carchive.find_entry(small, ENTRY)


def test_first_start_unpacks_later_starts_reuse(tmp_path):
    exe, info = make_executable(tmp_path)
    root = tmp_path / "cache"
    folder, unpacked = install.install(opener(exe), info["sha256"], info["unpacked_bytes"], root)
    assert unpacked and folder == root / info["sha256"][:16]
    assert install.is_installed(folder, info["sha256"])
    started = time.perf_counter()
    again, unpacked = install.install(opener(exe), info["sha256"], info["unpacked_bytes"], root)
    assert again == folder and not unpacked
    assert time.perf_counter() - started < 0.5
    assert sorted(p.name for p in root.iterdir()) == [info["sha256"][:16], info["sha256"][:16] + ".lock"]


def test_damaged_folder_is_unpacked_again(tmp_path):
    exe, info = make_executable(tmp_path)
    root = tmp_path / "cache"
    folder, _ = install.install(opener(exe), info["sha256"], info["unpacked_bytes"], root)
    (folder / "_internal" / "pkg" / "module.py").write_text("truncated")  # e.g. a cleaner, a crash before flush
    assert not install.is_installed(folder, info["sha256"])
    folder, unpacked = install.install(opener(exe), info["sha256"], info["unpacked_bytes"], root)
    assert unpacked and install.is_installed(folder, info["sha256"])
    (folder / "_internal" / "empty.txt").unlink()
    assert not install.is_installed(folder, info["sha256"])
    (folder / install.MARKER).unlink()
    assert not install.is_installed(folder, info["sha256"])
    assert install.install(opener(exe), info["sha256"], info["unpacked_bytes"], root)[1]


INSTALL_SCRIPT = textwrap.dedent("""
    import json, os, sys, time
    sys.path.insert(0, {root!r})
    from launcher import carchive, install, payload
    exe, digest, size, cache, mode = sys.argv[1:6]
    offset, length = carchive.find_entry(exe, {entry!r})
    def progress(done, total):
        if mode == "die" and done > total // 3:
            os._exit(9)  # killed in the middle of the unpacking
        if mode == "slow":
            time.sleep(0.05)
    while time.time() < float(sys.argv[6]):  # start together
        time.sleep(0.005)
    folder, unpacked = install.install(lambda: payload.Slice(exe, offset, length), digest, int(size),
                                       install.Path(cache), progress=progress)
    print(json.dumps({{"folder": str(folder), "unpacked": unpacked}}))
""").format(root=str(ROOT), entry=ENTRY)


def run_install(exe, info, root, mode, start_at=0.0):
    return subprocess.Popen([sys.executable, "-c", INSTALL_SCRIPT, str(exe), info["sha256"],
                             str(info["unpacked_bytes"]), str(root), mode, str(start_at)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_interrupted_unpacking_is_detected_and_redone(tmp_path):
    exe, info = make_executable(tmp_path)
    root = tmp_path / "cache"
    killed = run_install(exe, info, root, "die")
    assert killed.wait(60) == 9
    name = info["sha256"][:16]
    leftovers = [p.name for p in root.iterdir() if p.name.startswith(f"{name}.partial-")]
    assert leftovers and not (root / name).exists()  # nothing that looks installed
    folder, unpacked = install.install(opener(exe), info["sha256"], info["unpacked_bytes"], root)
    assert unpacked and install.is_installed(folder, info["sha256"])
    assert not [p for p in root.iterdir() if ".partial-" in p.name]


def test_two_copies_started_at_once_unpack_once(tmp_path):
    exe, info = make_executable(tmp_path)
    root = tmp_path / "cache"
    start_at = time.time() + 1.5  # both interpreters are up by then
    procs = [run_install(exe, info, root, "slow", start_at) for _ in range(2)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        results.append(json.loads(out))
    assert sorted(r["unpacked"] for r in results) == [False, True]
    assert results[0]["folder"] == results[1]["folder"]
    assert install.is_installed(Path(results[0]["folder"]), info["sha256"])
    assert installed_files(Path(results[0]["folder"])) == {**installed_files(tmp_path / "app0"),
                                                           install.MARKER: os.path.getsize(
                                                               Path(results[0]["folder"]) / install.MARKER)}
    assert not [p for p in root.iterdir() if "-" in p.name]  # no partial or trash folders


def test_changed_build_gets_its_own_folder_and_the_old_one_goes_unless_running(tmp_path):
    old_exe, old = make_executable(tmp_path, seed=1)
    new_exe, new = make_executable(tmp_path, seed=2)
    assert old["sha256"] != new["sha256"]
    root = tmp_path / "cache"
    old_folder, _ = install.install(opener(old_exe), old["sha256"], old["unpacked_bytes"], root)
    running = install.hold_in_use(root, old["sha256"])  # the old build is still open somewhere
    new_folder, unpacked = install.install(opener(new_exe), new["sha256"], new["unpacked_bytes"], root)
    assert unpacked and new_folder != old_folder
    if os.name != "nt":  # Windows has no shared locks; it keeps a running folder by refusing the rename
        assert install.remove_old_builds(root, keep=new["sha256"]) == []
        assert install.is_installed(old_folder, old["sha256"])
    os.close(running)
    assert install.remove_old_builds(root, keep=new["sha256"]) == [old["sha256"][:16]]
    assert not old_folder.exists() and install.is_installed(new_folder, new["sha256"])
    assert sorted(p.name for p in root.iterdir()) == [new["sha256"][:16], new["sha256"][:16] + ".lock"]


def test_damaged_payload_fails_cleanly(tmp_path):
    exe, info = make_executable(tmp_path)
    offset, length = carchive.find_entry(exe, ENTRY)
    with zipfile.ZipFile(opener(exe)()) as zf:
        member = zf.getinfo("_internal/libweights.so")  # stored: a flipped byte reaches the CRC check
    data = bytearray(exe.read_bytes())
    data[offset + member.header_offset + 30 + len(member.filename) + 1000] ^= 0xFF
    exe.write_bytes(bytes(data))
    root = tmp_path / "cache"
    with pytest.raises(zipfile.BadZipFile):
        install.install(opener(exe), info["sha256"], info["unpacked_bytes"], root)
    assert sorted(p.name for p in root.iterdir()) == [info["sha256"][:16] + ".lock"]


def test_not_enough_space_says_how_much_and_where(tmp_path):
    exe, info = make_executable(tmp_path)
    root = tmp_path / "cache"
    with pytest.raises(install.InstallError, match=r"needs 1000000000 MB.*SINKVIS_APP_DIR"):
        install.install(opener(exe), info["sha256"], 10**15, root)
    assert sorted(p.name for p in root.iterdir()) == [info["sha256"][:16] + ".lock"]


def test_cache_root_and_app_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("SINKVIS_APP_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert install.cache_root() == tmp_path / "sinkvis" / "app"
    monkeypatch.setenv("SINKVIS_APP_DIR", str(tmp_path / "elsewhere"))
    assert install.cache_root() == tmp_path / "elsewhere"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SINKVIS_APP_DIR", "relative")
    assert install.cache_root() == tmp_path / "relative"  # the app is exec-ed by this path
    monkeypatch.setenv("_PYI_APPLICATION_HOME_DIR", "/tmp/_MEI123")
    monkeypatch.setenv("LD_LIBRARY_PATH", "/tmp/_MEI123")
    monkeypatch.delenv("LD_LIBRARY_PATH_ORIG", raising=False)
    env = app_environment("41234")
    assert "_PYI_APPLICATION_HOME_DIR" not in env and "LD_LIBRARY_PATH" not in env
    assert env["SINKVIS_SPLASH_PORT"] == "41234"
    monkeypatch.setenv("LD_LIBRARY_PATH_ORIG", "/opt/lib")
    assert app_environment("0")["LD_LIBRARY_PATH"] == "/opt/lib" and "SINKVIS_SPLASH_PORT" not in app_environment("0")


def test_which_starts_open_the_window():
    assert opens_window([]) and opens_window(["--debug"])
    for args in (["--self-test"], ["--serve", "--port", "9000"], ["simulate", "--trace", "synthetic"], ["-h"]):
        assert not opens_window(args), args


def test_cookie_struct_matches_pyinstaller():
    assert carchive.COOKIE.size == 88 and struct.calcsize("!IIIIBc") == carchive.TOC_ENTRY.size


LAUNCH_SCRIPT = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r})
    meipass, exe = sys.argv[1:3]
    sys._MEIPASS, sys.executable, sys.argv = meipass, exe, ["sinkvis", *sys.argv[3:]]
    from launcher.start import main
    sys.exit(main())
""").format(root=str(ROOT))


def launch(tmp_path, exe, info, args, env=None):
    """launcher/start.py as the frozen launcher runs it (its unpack folder holds payload.json)."""
    meipass = tmp_path / "meipass"
    meipass.mkdir(exist_ok=True)
    (meipass / "payload.json").write_text(json.dumps({**info, "entry": ENTRY, "exe": "sinkvis-app"}))
    env = {**os.environ, "SINKVIS_APP_DIR": str(tmp_path / "cache"), "_PYI_APPLICATION_HOME_DIR": str(meipass),
           **(env or {})}
    return subprocess.Popen([sys.executable, "-c", LAUNCH_SCRIPT, str(meipass), str(exe), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


class FakeSplash:
    """The splash's side of pyi_splash's protocol (a TCP server on 127.0.0.1): records what arrives."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = str(self.server.getsockname()[1])
        self.received, self.closed = [], threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            conn, _ = self.server.accept()
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn):
        while data := conn.recv(4096):
            self.received.append(data)
            if b"\x04" in data:
                self.closed.set()  # the splash closes on 0x04 (or when a connection closes)
                break


@pytest.mark.skipif(os.name == "nt", reason="the stand-in app is a shell script")
def test_launcher_unpacks_once_then_execs_the_app_with_its_arguments(tmp_path):
    exe, info = make_executable(tmp_path)
    splash = FakeSplash()
    first = launch(tmp_path, exe, info, ["simulate", "--json"], env={"_PYI_SPLASH_IPC": splash.port})
    out, err = first.communicate(timeout=60)
    assert first.returncode == 3, err  # the app's exit code comes through (exec)
    assert out.strip() == "app simulate --json port=none pyi=none"  # no PyInstaller variables of the launcher
    assert "unpacking" in err and splash.closed.wait(5)  # a CLI start closes the splash at once
    splash = FakeSplash()
    second = launch(tmp_path, exe, info, [], env={"_PYI_SPLASH_IPC": splash.port})
    out, err = second.communicate(timeout=60)
    assert out.strip() == f"app  port={splash.port} pyi=none" and "unpacking" not in err  # reused
    # a window start: the status replaces the bootloader's last file name; closing is left to the app
    assert b"".join(splash.received) == "update_text(Starting SinkVis…)\r".encode() and not splash.closed.is_set()


@pytest.mark.skipif(os.name == "nt", reason="the stand-in app is a shell script; Windows has no exec")
def test_running_app_keeps_its_build_folder_through_exec(tmp_path):
    old_exe, old = make_executable(tmp_path, seed=1)
    new_exe, new = make_executable(tmp_path, seed=2)
    running = launch(tmp_path, old_exe, old, ["hold"])
    root = tmp_path / "cache"
    deadline = time.time() + 30
    while not install.is_installed(root / old["sha256"][:16], old["sha256"]) and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # exec-ed and sleeping
    assert install.install(opener(new_exe), new["sha256"], new["unpacked_bytes"], root)[1]
    assert install.remove_old_builds(root, keep=new["sha256"]) == []  # the app holds the lock it inherited
    running.communicate(timeout=30)
    assert install.remove_old_builds(root, keep=new["sha256"]) == [old["sha256"][:16]]


def test_app_closes_the_splash_when_its_window_shows(monkeypatch):
    import main

    splash = FakeSplash()
    monkeypatch.setenv("SINKVIS_SPLASH_PORT", splash.port)
    main._close_splash()
    assert splash.closed.wait(5) and "SINKVIS_SPLASH_PORT" not in os.environ
    main._close_splash()  # nothing to close: no error
