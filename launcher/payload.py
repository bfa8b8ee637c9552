"""The app folder as a zip: packed at build time (pack), unpacked once by the launcher (extract).

A zip because the standard library reads it, each member has its own CRC-32 (a damaged file
fails the extraction instead of starting a broken app) and members unpack independently, so
extract() spreads them over threads (zlib and file writes release the GIL: ~2× on 2 cores).
Members that do not compress (the quantized GGUF, safetensors weights) are stored as they are:
compressing them saves nothing and would cost time on every first start.
"""
import io
import os
import shutil
import stat
import threading
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

CHUNK = 1 << 20
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed, so the same folder packs to the same bytes (and hash)


class Slice(io.RawIOBase):
    """Read-only file object over bytes [offset, offset + length) of a file: the zip inside the executable."""

    def __init__(self, path, offset: int, length: int):
        super().__init__()
        self._file = open(path, "rb")
        self._offset, self._length, self._pos = offset, length, 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def seek(self, pos, whence=io.SEEK_SET):
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._length}[whence]
        self._pos = max(0, base + pos)
        return self._pos

    def tell(self):
        return self._pos

    def read(self, size=-1):
        left = max(0, self._length - self._pos)
        size = left if size is None or size < 0 else min(size, left)
        self._file.seek(self._offset + self._pos)
        data = self._file.read(size)
        self._pos += len(data)
        return data

    def readinto(self, buffer):
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def close(self):
        self._file.close()
        super().close()


def _compresses(path: Path) -> bool:
    """Whether deflate is worth it: judged on a MiB from the middle (weights and archives save < 10 %;
    a GGUF's first MiB is its vocabulary, which compresses well)."""
    with open(path, "rb") as fp:
        fp.seek(max(0, os.path.getsize(path) // 2 - CHUNK // 2))
        sample = fp.read(CHUNK)
    return len(sample) < 4096 or len(zlib.compress(sample, 1)) < 0.9 * len(sample)


def pack(folder, zip_path) -> dict:
    """Zip every file and symlink under `folder`; returns {"sha256", "files", "unpacked_bytes"} of the zip."""
    folder, files, total = Path(folder), 0, 0
    with zipfile.ZipFile(zip_path, "w", allowZip64=True) as zf:
        for path in sorted(folder.rglob("*")):
            st = os.lstat(path)
            if stat.S_ISDIR(st.st_mode):
                continue
            info = zipfile.ZipInfo(path.relative_to(folder).as_posix(), ZIP_DATE)
            info.external_attr = (st.st_mode & 0xFFFF) << 16
            if stat.S_ISLNK(st.st_mode):  # PyInstaller's onedir has some on Linux and macOS
                zf.writestr(info, os.readlink(path))
            else:
                info.compress_type = zipfile.ZIP_DEFLATED if _compresses(path) else zipfile.ZIP_STORED
                info.file_size = st.st_size
                with open(path, "rb") as src, zf.open(info, "w", force_zip64=st.st_size > 2**31) as out:
                    shutil.copyfileobj(src, out, CHUNK)
                total += st.st_size
            files += 1
    import hashlib  # build time only: the launcher leaves hashlib (and OpenSSL) out

    digest = hashlib.sha256()
    with open(zip_path, "rb") as fp:
        for block in iter(lambda: fp.read(CHUNK), b""):
            digest.update(block)
    return {"sha256": digest.hexdigest(), "files": files, "unpacked_bytes": total}


def _target(dest: Path, name: str) -> Path:
    path = dest.joinpath(*name.split("/"))
    if name.startswith("/") or ".." in name.split("/"):
        raise zipfile.BadZipFile(f"unsafe member name {name!r}")
    return path


def extract(open_zip, dest, workers: int = 0, progress=None) -> dict:
    """Unpack the zip that open_zip() opens (a fresh file object per call: one per thread) into dest.

    Returns {member name: size}, what install.py checks on later starts. progress(done, total), if
    given, is called with bytes written so far. Raises zipfile.BadZipFile on a damaged member."""
    dest = Path(dest)
    local, opened = threading.local(), []
    with open_zip() as fp, zipfile.ZipFile(fp) as zf:
        infos = zf.infolist()
    total = sum(i.file_size for i in infos)
    done, lock = [0], threading.Lock()
    for info in infos:
        _target(dest, info.filename).parent.mkdir(parents=True, exist_ok=True)

    def unpack(info):
        if not hasattr(local, "zf"):
            fp = open_zip()
            local.zf = zipfile.ZipFile(fp)
            opened.append((local.zf, fp))
        path, mode = _target(dest, info.filename), info.external_attr >> 16
        if stat.S_ISLNK(mode):
            os.symlink(local.zf.read(info).decode("utf-8"), path)
            return
        with local.zf.open(info) as src, open(path, "wb") as out:
            while block := src.read(CHUNK):
                out.write(block)
                if progress is not None:
                    with lock:
                        done[0] += len(block)
                        progress(done[0], total)
        if mode & 0o777:
            os.chmod(path, mode & 0o777)

    workers = workers or min(4, os.cpu_count() or 1)
    # biggest first, so one large library does not start last and run alone
    try:
        with ThreadPoolExecutor(workers, thread_name_prefix="unpack") as pool:
            list(pool.map(unpack, sorted(infos, key=lambda i: -i.compress_size)))
    finally:
        for zf, fp in opened:
            zf.close()
            fp.close()
    return {i.filename: i.file_size for i in infos}
