"""Where one entry of a PyInstaller executable's archive lies inside the file.

The layout is PyInstaller's CArchive (PyInstaller/archive/readers.py, CArchiveReader): the
archive ends with an 88-byte cookie that says how long the archive is and where its table of
contents is. build.spec stores the app's zip uncompressed with the 'PKG' typecode, which the
onefile bootloader does not unpack, so it can be read in place from the executable.
"""
import struct

COOKIE_MAGIC = b"MEI\014\013\012\013\016"
COOKIE = struct.Struct("!8sIIII64s")  # magic, archive length, TOC offset, TOC length, Python version, libpython
TOC_ENTRY = struct.Struct("!IIIIBc")  # entry length, offset, stored length, unpacked length, compressed, typecode
SEARCH_CHUNK = 8192


class ArchiveError(Exception):
    """The file is not a PyInstaller executable, or lacks the entry."""


def _cookie_offset(fp) -> int:
    """The cookie's offset: searched backwards from the end, like the bootloader (macOS appends a signature)."""
    fp.seek(0, 2)
    end = fp.tell()
    while end >= len(COOKIE_MAGIC):
        start = max(end - SEARCH_CHUNK, 0)
        fp.seek(start)
        found = fp.read(end - start).rfind(COOKIE_MAGIC)
        if found != -1:
            return start + found
        if start == 0:
            break
        end = start + len(COOKIE_MAGIC) - 1
    raise ArchiveError("no PyInstaller archive in this file")


def find_entry(path, name: str) -> tuple:
    """(offset, length) of the uncompressed entry `name` in the PyInstaller executable at `path`."""
    with open(path, "rb") as fp:
        cookie_at = _cookie_offset(fp)
        fp.seek(cookie_at)
        _, archive_length, toc_offset, toc_length, _, _ = COOKIE.unpack(fp.read(COOKIE.size))
        archive_start = cookie_at + COOKIE.size - archive_length
        fp.seek(archive_start + toc_offset)
        toc = fp.read(toc_length)
    pos = 0
    while pos < len(toc):
        entry_length, offset, length, _, compressed, _ = TOC_ENTRY.unpack_from(toc, pos)
        entry_name = toc[pos + TOC_ENTRY.size:pos + entry_length].rstrip(b"\0").decode("utf-8")
        if entry_name == name:
            if compressed:
                raise ArchiveError(f"{name} is stored compressed; build.spec must add it with typecode 'PKG'")
            return archive_start + offset, length
        pos += entry_length
    raise ArchiveError(f"{name} is not in {path}")
