"""The one way the product reads and writes files.

Every file the app or a command reads (a session, a config, a corpus, a checkpoint, its metadata, a
lesson, a program) goes through `read_bytes` / `read_text`: regular files only (never a FIFO, a device
or a folder, which could block or never end), opened without blocking, and at most a size limit per
kind of file. Every file it writes goes through `write_atomic`: a temporary file in the same folder,
fsync, then a rename, so a kill mid-write leaves the old file or the new one, never half of one.
Problems come back as `FileProblem`, whose message names the file and what is wrong.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
from pathlib import Path

MiB = 1024 * 1024

# The largest file of each kind the product reads.
LIMITS: dict[str, int] = {
    "session": 16 * MiB,
    "config": 1 * MiB,
    "program": 1 * MiB,
    "lesson": 1 * MiB,
    "progress": 1 * MiB,
    "metadata": 16 * MiB,
    "health records": 32 * MiB,  # a pretraining run's health.csv
    "corpus": 256 * MiB,
    "checkpoint": 8 * 1024 * MiB,
}

TEMP_PREFIX = ".explorer-tmp-"
# What older versions' writers left behind (".checkpoint.safetensors.tmp-1234"): removed at start too.
_LEGACY_TEMP = re.compile(r"^\..+\.tmp-\d+$")


class FileProblem(ValueError):
    """A file that cannot be read or written: the message names the file and the problem."""


def regular_file_problem(path: str | os.PathLike, kind: str) -> str | None:
    """Why `path` cannot be read as a file of `kind` (stat only, never opens it), or None.

    Cheap enough for the GUI thread: it never blocks on a FIFO or a device.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "no such file"
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if stat.S_ISDIR(st.st_mode):
        return "this is a folder, not a file"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file (a pipe, a device or a socket cannot be read)"
    limit = LIMITS.get(kind)
    if limit is not None and st.st_size > limit:
        return f"{_size(st.st_size)}, more than the {_size(limit)} a {kind} file may have"
    return None


def read_bytes(path: str | os.PathLike, kind: str) -> bytes:
    """The contents of a regular file of `kind`, at most LIMITS[kind] bytes; else FileProblem."""
    name = Path(path).name or str(path)
    problem = regular_file_problem(path, kind)
    if problem:
        raise FileProblem(f"{name}: {problem}")
    limit = LIMITS.get(kind)
    try:
        # O_NONBLOCK: a file swapped for a FIFO after the check still cannot block the open.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise FileProblem(f"{name}: cannot be read ({exc.strerror or exc})") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise FileProblem(f"{name}: not a regular file")
        chunks, total = [], 0
        while True:
            chunk = os.read(fd, MiB)
            if not chunk:
                break
            total += len(chunk)
            if limit is not None and total > limit:
                raise FileProblem(f"{name}: more than the {_size(limit)} a {kind} file may have")
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise FileProblem(f"{name}: cannot be read ({exc.strerror or exc})") from None
    finally:
        os.close(fd)


def read_text(path: str | os.PathLike, kind: str) -> str:
    """A UTF-8 text file of `kind` (see `read_bytes`); FileProblem when it is not UTF-8."""
    data = read_bytes(path, kind)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileProblem(f"{Path(path).name}: not UTF-8 text (byte {exc.start})") from None


def write_atomic(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write `data` to `path` through a temporary file in the same folder, fsync and rename."""
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    folder = path.parent if str(path.parent) else Path(".")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=folder)
    except OSError as exc:
        raise FileProblem(f"{path.name}: cannot write in {folder} ({exc.strerror or exc})") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise FileProblem(f"{path.name}: cannot be written ({exc.strerror or exc})") from None
    return path


def writable_folder_problem(folder: str | os.PathLike) -> str | None:
    """Create `folder` if needed and prove a file can be written in it (then removed); why not, or None."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        return f"{folder} exists and is not a folder"
    except OSError as exc:
        return f"cannot create the folder {folder} ({exc.strerror or exc})"
    if not folder.is_dir():
        return f"{folder} exists and is not a folder"
    try:
        fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=folder)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        return f"cannot write in the folder {folder} ({exc.strerror or exc})"
    return None


def remove_stale_temporaries(folder: str | os.PathLike) -> int:
    """Delete temporary files that a killed write left in `folder`; returns how many."""
    removed = 0
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return 0
    for entry in entries:
        stale = entry.name.startswith(TEMP_PREFIX) or _LEGACY_TEMP.match(entry.name)
        if stale and entry.is_symlink() is False and entry.is_file():
            try:
                entry.unlink()
                removed += 1
            except OSError:
                continue
    return removed


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} bytes"
