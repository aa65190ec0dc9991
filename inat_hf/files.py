"""Writing output files safely (training and inference): atomically, with every file name representable as text,
into output folders that hold no input and no other command's output, with one clear line when the disk is full or
read-only.

On Linux a file name is any bytes but ``/`` and NUL: not valid UTF-8 (Python holds those bytes as lone surrogates,
which no UTF-8 writer accepts), or with a newline or a terminal escape in it. :func:`printable_path` writes every
name as one line of text that no other name shares.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import IO

from .cli import option

__all__ = [
    "atomic_write",
    "check_model_output_dir",
    "disk_full_text",
    "explain_storage_errors",
    "is_disk_full",
    "overwrite_option",
    "printable_path",
]

# Marks a folder written by prepare_data.py (owned by inat_hf.data.prepare); "dataset_dict.json" marks any
# DatasetDict.save_to_disk folder. No model is written into (or below) either.
PREPARED_MANIFEST = "inat_prepared.json"
_DATASET_MARKERS = (PREPARED_MANIFEST, "dataset_dict.json")


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


def is_disk_full(exc: BaseException | None) -> bool:
    """``exc`` or one of its causes says the disk (or the user's quota) is full."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        # torch.save reports a full disk as a RuntimeError from its zip writer, pyarrow as an OSError without errno
        if isinstance(exc, (RuntimeError, OSError)) and any(
            s in str(exc) for s in ("unexpected pos", "file write failed", "No space left on device")
        ):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def disk_full_text(folder: str | os.PathLike) -> str:
    """The first words of every "disk full" error: where, and how much space is free now."""
    existing = os.path.abspath(folder)
    while not os.path.exists(existing) and os.path.dirname(existing) != existing:
        existing = os.path.dirname(existing)  # (a folder removed after the failed write: its device)
    try:
        free = f"{shutil.disk_usage(existing).free / 2**20:.1f} MiB"
    except OSError:
        free = "unknown"
    return f"Disk full: no space left on the device holding {os.fspath(folder)} ({free} free now)"


def _storage_error(exc: BaseException, folder: str | os.PathLike) -> str | None:
    """One line for a write into ``folder`` that failed for a reason of the storage (full, read-only, no
    permission); None for any other error."""
    if is_disk_full(exc):
        return f"{disk_full_text(folder)}. Nothing was changed there; free some space or choose another folder."
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            what = (
                "is on a read-only file system" if exc.errno == errno.EROFS else "is not writable (permission denied)"
            )
            where = os.fspath(exc.filename) if exc.filename is not None else os.fspath(folder)
            return (
                f"cannot write {os.fspath(folder)}: {printable_path(where)} {what}. Nothing was changed there; choose "
                "a folder you can write to."
            )
        exc = exc.__cause__ or exc.__context__
    return None


@contextlib.contextmanager
def explain_storage_errors(folder: str | os.PathLike, error: type[Exception]) -> Iterator[None]:
    """Inside the block, a write that fails for a reason of the storage under ``folder`` (disk full, read-only,
    permission denied) raises ``error`` with one line saying what and where (the OSError is its cause)."""
    try:
        yield
    except Exception as exc:
        message = _storage_error(exc, folder)
        if message is None:
            raise
        raise error(message) from exc


def overwrite_option():
    """``--overwrite`` of the commands that write a model folder (train.py, train_geo_prior.py): one default and
    one help text."""
    return option(
        False,
        "Allow --output_dir to be a non-empty folder that is not this command's own earlier output (a model of "
        "another kind, other files). Files of the same name are replaced; other files are kept.",
    )


def check_model_output_dir(
    output_dir: str | os.PathLike,
    *,
    model_type: str,
    marker: str | None = None,
    overwrite: bool = False,
    inputs: tuple[str | os.PathLike | None, ...] = (),
) -> None:
    """Before anything is written, refuse (``ValueError``) a model output folder that is one of the run's
    ``inputs``, or is or lies inside a prepared dataset; and, unless ``overwrite``, a non-empty folder that is not
    this command's own earlier output: its ``config.json`` names another ``model_type``, or it has neither a
    ``config.json`` of ``model_type`` nor the command's ``marker`` file (a run stopped before its final save)."""
    out = os.path.realpath(os.fspath(output_dir))
    folder = out
    while True:
        if any(os.path.isfile(os.path.join(folder, name)) for name in _DATASET_MARKERS):
            relation = "is" if folder == out else "lies inside"
            raise ValueError(
                f"--output_dir {os.fspath(output_dir)} {relation} the prepared dataset {folder}: a model does not go "
                "into a dataset folder (preparing it again would refuse to replace the folders it wrote). Choose a "
                "folder outside it, e.g. next to it."
            )
        if os.path.dirname(folder) == folder:
            break
        folder = os.path.dirname(folder)
    for path in inputs:
        if path is not None and os.path.realpath(os.fspath(path)) == out:
            raise ValueError(
                f"--output_dir {os.fspath(output_dir)} is also an input of this run ({os.fspath(path)}): the run "
                "would replace it. Choose another output folder."
            )
    if overwrite or not os.path.isdir(out) or not os.listdir(out):
        return
    try:
        with open(os.path.join(out, "config.json"), encoding="utf-8") as f:
            found = json.load(f).get("model_type")
    except FileNotFoundError:
        found = None
    except (OSError, ValueError, AttributeError):
        found = "unreadable"
    if found == model_type or (found is None and marker and os.path.exists(os.path.join(out, marker))):
        return  # this command's own earlier output (resume, continue, or train again into it)
    if found is not None:
        what = f"a model of another kind (config.json model_type {found!r}, this command writes {model_type!r})"
    else:
        names = sorted(os.listdir(out))
        what = "files this command did not write: " + ", ".join(repr(n) for n in names[:5])
        what += f" and {len(names) - 5} more" if len(names) > 5 else ""
    raise ValueError(
        f"--output_dir {os.fspath(output_dir)} holds {what}. Nothing was written; choose a new or empty folder, or "
        "pass --overwrite to write into it anyway (files of the same name are replaced)."
    )
