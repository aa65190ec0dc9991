"""Writing output files safely (training and inference): atomically, and with every file name representable as text.

On Linux a file name is bytes; the ones that are not valid UTF-8 reach Python as lone surrogates (``os.fsdecode``'s
``surrogateescape``), which no UTF-8 writer accepts: :func:`printable_path` writes them as ``\\xNN`` escapes.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from typing import IO

__all__ = ["atomic_write", "printable_path"]


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike, mode: str = "w", *, encoding: str | None = "utf-8", newline: str | None = None
) -> Iterator[IO]:
    """``with atomic_write(path) as f: ...``: ``path`` gets the new content only once the block completes (a temporary
    file beside it, flushed to disk, renamed over it): a failure or a kill leaves the previous file untouched."""
    if not mode.startswith("w"):
        raise ValueError(f"atomic_write writes whole files: mode must start with 'w', got {mode!r}")
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with open(fd, mode, encoding=None if "b" in mode else encoding, newline=newline) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # the permissions open() would have given (mkstemp makes it private)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def printable_path(name: str | os.PathLike) -> str:
    """``name`` as text any UTF-8 writer accepts: undecodable bytes of a file name become ``\\xNN`` escapes."""
    name = os.fspath(name)
    if isinstance(name, bytes):
        return name.decode("utf-8", "backslashreplace")
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        return name.encode("utf-8", "surrogateescape" if _only_escapes(name) else "backslashreplace").decode(
            "utf-8", "backslashreplace"
        )


def _only_escapes(name: str) -> bool:
    """Every surrogate in ``name`` is one of ``surrogateescape``'s (an undecodable byte 0x80-0xFF)."""
    return all(not 0xD800 <= ord(c) <= 0xDFFF or 0xDC80 <= ord(c) <= 0xDCFF for c in name)
