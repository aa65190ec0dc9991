"""Writing output files safely (training and inference): atomically, and with every file name representable as text.

On Linux a file name is any bytes but ``/`` and NUL: not valid UTF-8 (Python holds those bytes as lone surrogates,
which no UTF-8 writer accepts), or with a newline or a terminal escape in it. :func:`printable_path` writes every
name as one line of text that no other name shares.
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


def printable_path(name: str | bytes | os.PathLike) -> str:
    """``name`` (a file name or path) as one line of text that any UTF-8 writer accepts and that no other name
    shares: every text output (the console, CSV, JSON, submission ids, error lines) writes names through it.

    - a backslash is written ``\\\\`` (so that an escape never collides with a name that spells one out);
    - a control or other non-printable character (``str.isprintable``: newline, tab, ESC, DEL, C1 controls, Unicode
      line separators and format characters) is written ``\\xNN`` below U+0080, else ``\\uNNNN`` /
      ``\\UNNNNNNNN``: it can neither break a line nor send a terminal escape sequence;
    - a byte that is not UTF-8 (Linux names are bytes; Python holds such a byte as ``os.fsdecode``'s lone
      surrogate) is written ``\\xNN``, always 80-FF;
    - everything else (any printable character of any script) is written as it is.

    Reversible: ``\\xNN`` below 80 and ``\\u``/``\\U`` are characters, ``\\xNN`` from 80 up is a raw byte."""
    name = os.fspath(name)
    if isinstance(name, bytes):
        name = name.decode("utf-8", "surrogateescape")
    if name.isprintable() and "\\" not in name:
        return name  # the common case
    return "".join(_escape(c) for c in name)


def _escape(c: str) -> str:
    code = ord(c)
    if c == "\\":
        return "\\\\"
    if 0xDC80 <= code <= 0xDCFF:  # surrogateescape's stand-in for the undecodable byte code - 0xDC00
        return f"\\x{code - 0xDC00:02x}"
    if c.isprintable():
        return c
    return f"\\x{code:02x}" if code < 0x80 else f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"
