"""The one way the product reads and writes files.

Every file the app or a command reads (a session, a config, a corpus, a checkpoint, its metadata, a
lesson, a program) goes through `read_bytes` / `read_text`: regular files only (never a FIFO, a device
or a folder, which could block or never end), opened without blocking, and at most a size limit per
kind of file. Every file it writes goes through `write_atomic`: a temporary file in the same folder,
fsync, then a rename, so a kill mid-write leaves the old file or the new one, never half of one.
Problems come back as `FileProblem`, whose message names the file and what is wrong.

`FolderLock` marks a folder as being written by one process (a training run's folder): an advisory lock
on the folder itself that the kernel drops when its owner ends, even by kill -9, so a crash never leaves a
stale lock behind and no lock file is ever added to the folder.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
import threading
import time
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no advisory locks on folders (see FolderLock)
    fcntl = None

MiB = 1024 * 1024

# The largest file of each kind the product reads.
LIMITS: dict[str, int] = {
    "session": 16 * MiB,
    "config": 1 * MiB,
    "program": 1 * MiB,
    "lesson": 1 * MiB,
    "image": 2 * MiB,  # a lesson's picture
    "progress": 1 * MiB,
    "metadata": 16 * MiB,
    "health records": 32 * MiB,  # a pretraining run's health.csv
    "histograms": 64 * MiB,  # a pretraining run's histograms.safetensors
    "corpus": 256 * MiB,
    "checkpoint": 8 * 1024 * MiB,
}

TEMP_PREFIX = ".explorer-tmp-"
# What older versions' writers left behind (".checkpoint.safetensors.tmp-1234"): removed at start too.
_LEGACY_TEMP = re.compile(r"^\..+\.tmp-\d+$")
# A temporary names the process writing it (".explorer-tmp-<pid>-<random>"), so that a folder's clean-up
# by another window, or by this one, never deletes a write still in flight.
_OWNED_TEMP = re.compile(re.escape(TEMP_PREFIX) + r"(\d+)-")
# A temporary whose writer is still alive is left alone unless it is older than this (its process id
# reused by another program after a crash, or a writer stuck for an hour): no atomic write takes so long.
TEMP_GRACE_S = 3600.0


def temp_prefix() -> str:
    """The prefix of this process's temporary files: TEMP_PREFIX, the process id, a dash."""
    return f"{TEMP_PREFIX}{os.getpid()}-"


def _process_alive(pid: int) -> bool:
    """Whether process `pid` exists (POSIX: signal 0). Where that cannot be asked (Windows, where
    os.kill would end the process), every writer counts as alive and only the age rule applies."""
    if os.name != "posix":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists but belongs to someone else (EPERM)
        return True
    return True


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
    name = display_name(path)
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
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise FileProblem(f"{name}: not a regular file")
        # One read of the size the file has: a large file is held once, not as chunks plus their join.
        first = os.read(fd, (st.st_size if limit is None else min(st.st_size, limit)) + 1)
        chunks, total = [first], len(first)
        if limit is not None and total > limit:
            raise FileProblem(f"{name}: more than the {_size(limit)} a {kind} file may have")
        while first:  # the file grew since fstat: the rest, a MiB at a time
            chunk = os.read(fd, MiB)
            if not chunk:
                break
            total += len(chunk)
            if limit is not None and total > limit:
                raise FileProblem(f"{name}: more than the {_size(limit)} a {kind} file may have")
            chunks.append(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)
    except OSError as exc:
        raise FileProblem(f"{name}: cannot be read ({exc.strerror or exc})") from None
    finally:
        os.close(fd)


def read_text(path: str | os.PathLike, kind: str) -> str:
    """A UTF-8 text file of `kind` (see `read_bytes`), without the byte-order mark some Windows editors
    write first; FileProblem when it is not UTF-8."""
    raw = read_bytes(path, kind)
    data = strip_bom(raw)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        where = exc.start + len(raw) - len(data)  # counted in the file, with its mark
        raise FileProblem(f"{display_name(path)}: not UTF-8 text (byte {where})") from None


def strip_bom(data: bytes | str) -> bytes | str:
    """`data` without a leading UTF-8 byte-order mark: every text the app reads accepts one."""
    if isinstance(data, bytes):
        return data.removeprefix(b"\xef\xbb\xbf")
    return data.removeprefix("\ufeff")


def display_name(path: str | os.PathLike, whole: bool = False) -> str:
    """The file name of `path` (all of `path` when `whole`) as a message can show it: bytes that are not
    UTF-8 (a name made on another system) read as U+FFFD instead of breaking the message or the file that
    quotes it."""
    name = os.fsdecode(os.fspath(path) if whole else (Path(path).name or os.fspath(path)))
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def write_atomic(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write `data` to `path` through a temporary file in the same folder, fsync and rename."""
    path = Path(path)
    try:
        payload = data.encode("utf-8") if isinstance(data, str) else data
    except UnicodeEncodeError as exc:  # text holding a file name that is not UTF-8, say
        raise FileProblem(f"{display_name(path)}: the text to write is not valid Unicode "
                          f"(character {exc.start})") from None
    folder = path.parent if str(path.parent) else Path(".")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(), dir=folder)
    except OSError as exc:
        raise FileProblem(f"{display_name(path)}: cannot write in {folder} ({exc.strerror or exc})") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise FileProblem(f"{display_name(path)}: cannot be written ({exc.strerror or exc})") from None
    return path


class OrderedWriter:
    """Writes files with `write_atomic` on one background thread, in the order they were submitted.

    For a caller that must not wait for the disk (the GUI thread: each atomic write ends in an fsync,
    tens of milliseconds on a busy disk): `submit` returns at once; `flush` waits until everything
    submitted so far is on disk (a window's close, a test). Each file is still written atomically, and
    a later version of a file never lands before an earlier one. A write that fails is skipped (its
    FileProblem is kept in `problems`, the newest last); the ones after it still run.
    """

    def __init__(self, name: str = "explorer-file-writer", make_folders: bool = True) -> None:
        """`make_folders` False: a write whose folder is gone by its turn is skipped (kept in `problems`)
        instead of making the folder again (a run folder deleted while its record waited)."""
        self._name = name
        self._make_folders = make_folders
        self._cond = threading.Condition()
        self._queue: list[tuple[Path, bytes | str]] = []
        self._submitted = 0
        self._done = 0
        self._thread: threading.Thread | None = None
        self.problems: list[FileProblem] = []

    def submit(self, writes) -> None:
        """Queue `writes`, pairs (path, data), to be written in this order after everything queued before."""
        writes = [(Path(path), data) for path, data in writes]
        if not writes:
            return
        with self._cond:
            self._queue.extend(writes)
            self._submitted += len(writes)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def pending(self) -> int:
        """How many submitted writes are not on disk yet."""
        with self._cond:
            return self._submitted - self._done

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every write submitted so far is done (or failed); True when none is left."""
        with self._cond:
            target = self._submitted
            return self._cond.wait_for(lambda: self._done >= target, timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._cond.wait_for(lambda: bool(self._queue), timeout=30.0):
                    self._thread = None  # idle: the next submit starts a new thread
                    return
                path, data = self._queue.pop(0)
            try:
                if not self._make_folders and not path.parent.is_dir():
                    raise FileProblem(f"{display_name(path)}: its folder is gone")
                write_atomic(path, data)
            except FileProblem as exc:
                self.problems.append(exc)
            finally:
                with self._cond:
                    self._done += 1
                    self._cond.notify_all()


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
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(), dir=folder)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        return f"cannot write in the folder {folder} ({exc.strerror or exc})"
    return None


def remove_stale_temporaries(folder: str | os.PathLike) -> int:
    """Delete temporary files that a killed write left in `folder`; returns how many.

    A temporary whose writing process is alive (this one included) is a write in flight, not a leftover:
    it stays unless it is older than TEMP_GRACE_S. One without an owner (older versions) always goes.
    """
    removed = 0
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return 0
    now = time.time()
    for entry in entries:
        stale = entry.name.startswith(TEMP_PREFIX) or _LEGACY_TEMP.match(entry.name)
        if stale and entry.is_symlink() is False and entry.is_file():
            owner = _OWNED_TEMP.match(entry.name)
            if owner and _process_alive(int(owner.group(1))):
                try:
                    if now - entry.stat().st_mtime < TEMP_GRACE_S:
                        continue
                except OSError:
                    continue
            try:
                entry.unlink()
                removed += 1
            except OSError:
                continue
    return removed


class FolderBusy(FileProblem):
    """The folder is locked by another process that is writing in it."""


class FolderLock:
    """An exclusive advisory lock on a folder (flock on the folder's own descriptor), held until `release`
    or the end of the owning process (the kernel drops it then, whatever killed the process).

    `FolderLock(path)` raises FolderBusy when another process holds it and FileProblem when the folder
    cannot be opened. Where the platform has no flock (Windows) the lock is a no-op: one writer per folder
    is then the user's care.
    """

    def __init__(self, folder: str | os.PathLike, wait_s: float = 1.0) -> None:
        """`wait_s`: how long to retry while the lock is held (`folder_busy` probes hold it for a moment)."""
        self.folder = Path(folder)
        self._fd: int | None = None
        if fcntl is None:
            return
        try:
            fd = os.open(self.folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        except OSError as exc:
            raise FileProblem(f"{self.folder.name}: cannot be opened ({exc.strerror or exc})") from None
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise FolderBusy(f"{self.folder}: another process is writing in this folder") from None
                time.sleep(0.01)
        self._fd = fd

    def release(self) -> None:
        """Give the lock up (also done by the kernel when the process ends)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the only descriptor of the lock releases it

    def __enter__(self) -> FolderLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def folder_busy(folder: str | os.PathLike) -> bool:
    """True when another process holds a FolderLock on `folder` (a live writer); False when nobody does,
    or the folder cannot be opened."""
    try:
        FolderLock(folder, wait_s=0.0).release()
    except FolderBusy:
        return True
    except FileProblem:
        return False
    return False


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} bytes"
