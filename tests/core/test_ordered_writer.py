"""files.OrderedWriter: atomic writes on one background thread, in submission order."""

from __future__ import annotations

import threading

from explorer.core import files


def test_writes_land_in_order_off_the_calling_thread(tmp_path, monkeypatch):
    seen: list[tuple[str, str]] = []
    real = files.write_atomic

    def write(path, data):
        seen.append((path.name, threading.current_thread().name))
        return real(path, data)

    monkeypatch.setattr(files, "write_atomic", write)
    writer = files.OrderedWriter("test-writer")
    for i in range(20):
        writer.submit([(tmp_path / "a.json", f"a{i}"), (tmp_path / "b.csv", f"b{i}")])
    assert writer.flush(60)
    assert writer.pending() == 0
    assert (tmp_path / "a.json").read_text() == "a19" and (tmp_path / "b.csv").read_text() == "b19"
    assert [name for name, _ in seen] == ["a.json", "b.csv"] * 20
    assert {thread for _, thread in seen} == {"test-writer"}


def test_a_failed_write_is_kept_and_the_next_ones_still_run(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    writer = files.OrderedWriter()
    writer.submit([(blocker / "inside.json", "no"), (tmp_path / "ok.json", "yes")])  # a file as a folder
    assert writer.flush(60)
    assert len(writer.problems) == 1 and isinstance(writer.problems[0], files.FileProblem)
    assert (tmp_path / "ok.json").read_text() == "yes"


def test_flush_with_nothing_submitted_returns_at_once():
    assert files.OrderedWriter().flush(0)


def test_without_make_folders_a_write_into_a_deleted_folder_is_skipped(tmp_path):
    writer = files.OrderedWriter(make_folders=False)
    writer.submit([(tmp_path / "gone" / "run.json", "{}"), (tmp_path / "here.json", "{}")])
    assert writer.flush(60)
    assert not (tmp_path / "gone").exists() and (tmp_path / "here.json").exists()
    assert len(writer.problems) == 1 and "gone" in str(writer.problems[0])
