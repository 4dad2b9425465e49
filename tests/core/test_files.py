"""core/files: regular files only, a size limit per kind, atomic writes, stale temporaries removed."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from explorer.core import files
from explorer.core.files import FileProblem


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "pipe"
    os.mkfifo(path)
    return path


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["session", "config", "corpus", "checkpoint", "program"])
def test_a_fifo_is_refused_without_blocking(fifo, kind):
    assert "not a regular file" in files.regular_file_problem(fifo, kind)
    with pytest.raises(FileProblem, match="pipe: not a regular file"):
        files.read_bytes(fifo, kind)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["session", "config", "corpus", "checkpoint", "metadata"])
def test_dev_zero_is_refused_without_reading(kind):
    with pytest.raises(FileProblem, match="not a regular file"):
        files.read_text("/dev/zero", kind)


@pytest.mark.timeout(60)
def test_a_link_to_dev_zero_is_refused(tmp_path):
    link = tmp_path / "corpus.txt"
    link.symlink_to("/dev/zero")
    with pytest.raises(FileProblem, match="corpus.txt: not a regular file"):
        files.read_bytes(link, "corpus")


@pytest.mark.timeout(60)
def test_a_50_mb_session_is_refused_from_its_size(tmp_path):
    path = tmp_path / "big.json"
    with open(path, "wb") as handle:  # sparse: 50 MB on paper, nothing on disk
        handle.truncate(50 * files.MiB)
    with pytest.raises(FileProblem, match=r"big.json: 50.0 MiB, more than the 16.0 MiB a session file"):
        files.read_text(path, "session")


def test_folder_missing_and_non_utf8(tmp_path):
    with pytest.raises(FileProblem, match="folder"):
        files.read_bytes(tmp_path, "config")
    with pytest.raises(FileProblem, match="no such file"):
        files.read_bytes(tmp_path / "nope.json", "config")
    bad = tmp_path / "bad.json"
    bad.write_bytes(b'{"a": "\xff"}')
    with pytest.raises(FileProblem, match="bad.json: not UTF-8 text"):
        files.read_text(bad, "config")
    good = tmp_path / "good.json"
    good.write_text("{}", encoding="utf-8")
    assert files.read_text(good, "config") == "{}"


def test_write_atomic_replaces_whole_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "sub" / "out.txt"
    files.write_atomic(path, "one")
    files.write_atomic(path, b"two")
    assert path.read_text() == "two"
    assert sorted(p.name for p in path.parent.iterdir()) == ["out.txt"]


def test_a_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "session.json"
    path.write_text("old")

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(FileProblem, match="session.json: cannot be written"):
        files.write_atomic(path, "new")
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["session.json"]


def test_write_into_a_file_as_folder_is_a_file_problem(tmp_path):
    blocker = tmp_path / "plain"
    blocker.write_text("x")
    with pytest.raises(FileProblem, match="cannot write in"):
        files.write_atomic(blocker / "out.txt", "data")
    assert "not a folder" in files.writable_folder_problem(blocker)
    assert files.writable_folder_problem(tmp_path / "new" / "deeper") is None
    assert (tmp_path / "new" / "deeper").is_dir()


def test_stale_temporaries_of_this_and_older_writers_are_removed(tmp_path):
    (tmp_path / f"{files.TEMP_PREFIX}abc").write_bytes(b"x" * 100)
    (tmp_path / ".checkpoint.safetensors.tmp-4242").write_bytes(b"x")
    (tmp_path / "checkpoint.safetensors").write_bytes(b"keep")
    (tmp_path / "notes.tmp-1").write_bytes(b"keep: not hidden, not ours")
    assert files.remove_stale_temporaries(tmp_path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.safetensors", "notes.tmp-1"]


@pytest.mark.skipif(os.name != "posix", reason="asks whether a process lives with signal 0")
def test_a_temporary_being_written_by_a_live_process_is_not_a_leftover(tmp_path):
    # Another window's cleanup (or this process's own) must never delete a write still in flight: the
    # temporary names its writer, and a living writer's young temporary stays.
    mine = tmp_path / f"{files.temp_prefix()}inflight"
    mine.write_bytes(b"x")
    assert mine.name.startswith(files.TEMP_PREFIX)
    gone = tmp_path / f"{files.TEMP_PREFIX}{dead_pid()}-killed"
    gone.write_bytes(b"x")
    assert files.remove_stale_temporaries(tmp_path) == 1
    assert [p.name for p in tmp_path.iterdir()] == [mine.name]
    # An hour-old temporary is a leftover even if its process id is alive again (reused after a crash).
    old = time.time() - files.TEMP_GRACE_S - 60
    os.utime(mine, (old, old))
    assert files.remove_stale_temporaries(tmp_path) == 1
    assert list(tmp_path.iterdir()) == []


def test_write_atomic_names_its_temporary_after_this_process(tmp_path, monkeypatch):
    seen = []
    real_replace = os.replace

    def spy(src, dst):
        seen.append(Path(src).name)
        return real_replace(src, dst)

    monkeypatch.setattr(files.os, "replace", spy)
    files.write_atomic(tmp_path / "out.txt", "data")
    assert seen and seen[0].startswith(files.temp_prefix())


def dead_pid() -> int:
    """A process id that belonged to a process that has ended (and been reaped)."""
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    return int(proc.stdout)
