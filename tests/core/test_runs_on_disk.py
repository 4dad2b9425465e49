"""Issue 24: never lose a run. Run folders are taken atomically, named by an identity, shared by every
window and command of the user, and guarded by a lock that dies with its owner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from explorer.core import files
from explorer.core.workspaces import pretrain
from explorer.core.workspaces.pretrain import PretrainWorkspace, run_folder
from explorer.core.workspaces.session import SessionError, Workspaces, read_session, write_session
from tests.trained import TINY, trained_run

ROOT = Path(__file__).resolve().parents[2]

ALLOCATE = """
    import sys
    from explorer.core.workspaces.pretrain import PretrainWorkspace
    from explorer.core.gpt.train import TrainSettings
    config = {"vocab_size": 64, "context_length": 16, "emb_dim": 16, "n_heads": 2, "n_layers": 1}
    settings = TrainSettings(steps=1).to_dict()
    ws = PretrainWorkspace()
    print("ready", flush=True)
    sys.stdin.readline()  # both processes start allocating together
    for _ in range(int(sys.argv[1])):
        run = ws.new_run(config, settings, None)
        print(run.run_id, run.uid, flush=True)
"""


def _spawn(code: str, *args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], cwd=ROOT, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.timeout(240)
@pytest.mark.slow
def test_two_processes_allocating_1000_runs_at_once_never_share_one():
    """Before: the next id came from a scan and mkdir(exist_ok=True): 202 of 600 ids were given twice."""
    each = 500
    procs = [_spawn(ALLOCATE, str(each)) for _ in range(2)]
    for proc in procs:
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()[-2000:]
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    got = []
    for proc in procs:
        out, err = proc.communicate(timeout=200)
        assert proc.returncode == 0, err[-2000:]
        got += [tuple(line.split()) for line in out.splitlines()]
    assert len(got) == 2 * each
    ids = [int(run_id) for run_id, _ in got]
    assert len(set(ids)) == len(ids), "two processes got the same run"
    assert len({uid for _, uid in got}) == len(got)
    for run_id, uid in got:  # each folder holds the identity of the one process that got it
        assert pretrain.folder_uid(run_folder(int(run_id))) == uid


def test_a_killed_writers_temporaries_go_at_start_from_every_run_folder_but_a_live_ones():
    """Before: only runs/ itself was cleaned; 13 of 20 run folders kept ~13 MB of temporaries."""
    ws = PretrainWorkspace()
    dead = trained_run(ws)
    live = trained_run(ws, seed=2)
    for run in (dead, live):
        (run_folder(run.run_id) / f"{files.TEMP_PREFIX}abc").write_bytes(b"x" * 1000)
        (run_folder(run.run_id) / ".checkpoint.safetensors.tmp-99").write_bytes(b"x")
    with files.FolderLock(run_folder(live.run_id)):  # a process still writing there
        PretrainWorkspace()
        assert not [p for p in run_folder(dead.run_id).iterdir() if p.name.startswith(".")]
        assert len([p for p in run_folder(live.run_id).iterdir() if p.name.startswith(".")]) == 2
    assert (run_folder(dead.run_id) / "checkpoint.safetensors").is_file()


def test_a_folder_lock_is_exclusive_and_dies_with_its_process(tmp_path):
    holder = _spawn("""
        import sys
        from explorer.core import files
        lock = files.FolderLock(sys.argv[1])
        print("locked", flush=True)
        sys.stdin.readline()
    """, str(tmp_path))
    try:
        assert holder.stdout.readline().strip() == "locked", holder.stderr.read()
        assert files.folder_busy(tmp_path)
        with pytest.raises(files.FolderBusy):
            files.FolderLock(tmp_path)
    finally:
        holder.kill()  # as kill -9 would: the kernel drops the lock
        holder.wait()
    assert not files.folder_busy(tmp_path)
    files.FolderLock(tmp_path).release()


def _session_after_one_run(tmp_path) -> tuple[Path, int]:
    ws = Workspaces()
    first = trained_run(ws.pretrain)
    path = tmp_path / "old.json"
    write_session(path, ws)
    return path, first.run_id


def test_an_old_session_is_refused_when_its_run_number_names_another_run_now(tmp_path):
    """Train run 1, save the session, delete run 1, train again (run 1 again), open the old session: before,
    its "Run 1" pointed at the new run's checkpoint and deleting that entry removed the new run."""
    path, first = _session_after_one_run(tmp_path)
    ws = PretrainWorkspace()
    ws.refresh_from_folder()
    ws.delete_run(first)
    assert not run_folder(first).exists()
    second = trained_run(ws, seed=5)
    assert second.run_id == first  # the number is free again; the identity is not
    before = sorted(p.name for p in run_folder(first).iterdir())
    with pytest.raises(SessionError) as refused:
        read_session(path)
    message = str(refused.value)
    assert "another run" in message and "\n" not in message
    assert sorted(p.name for p in run_folder(first).iterdir()) == before  # the new run is untouched


def test_deleting_an_entry_deletes_only_its_own_folder():
    ws = PretrainWorkspace()
    run = trained_run(ws)
    stale = PretrainWorkspace()
    stale.refresh_from_folder()
    ws.delete_run(run.run_id)
    newer = trained_run(ws, seed=3)
    assert newer.run_id == run.run_id
    stale.delete_run(run.run_id)  # the stale window still lists the old run under that number
    assert (run_folder(newer.run_id) / "checkpoint.safetensors").is_file()
    assert run.run_id not in stale.runs


def test_a_run_another_process_trains_cannot_be_deleted():
    ws = PretrainWorkspace()
    run = trained_run(ws)
    with files.FolderLock(run_folder(run.run_id)):
        with pytest.raises(files.FileProblem, match="training in another"):
            ws.delete_run(run.run_id)
    assert run.run_id in ws.runs and run_folder(run.run_id).is_dir()


def test_each_workspace_sees_the_runs_of_the_others_and_the_last_to_close_hides_none(tmp_path):
    """Two windows of one user: each trained a run; the next window listed only the last closed one's."""
    a, b = Workspaces(), Workspaces()
    mine = trained_run(a.pretrain, seed=1)
    theirs = trained_run(b.pretrain, seed=2)
    assert mine.run_id != theirs.run_id
    assert a.pretrain.refresh_from_folder() == [theirs.run_id]
    assert b.pretrain.refresh_from_folder() == [mine.run_id]
    assert a.pretrain.runs[theirs.run_id].checkpoint == str(pretrain.run_folder(theirs.run_id) /
                                                            "checkpoint.safetensors")
    write_session(tmp_path / "b.json", b)
    write_session(tmp_path / "a.json", a)
    # the next start opens one of the sessions; the folder adds what the other window made
    for name in ("a.json", "b.json"):
        later = Workspaces()
        later.apply(read_session(tmp_path / name))
        later.pretrain.refresh_from_folder()
        assert set(later.pretrain.runs) == {mine.run_id, theirs.run_id}


def test_a_run_killed_mid_training_is_listed_with_its_last_checkpoint():
    ws = PretrainWorkspace()
    run = trained_run(ws)
    folder = run_folder(run.run_id)
    record = json.loads((folder / "run.json").read_text())
    record.update(status="running", checkpoint=None, steps={}, evals={})  # as written when it started
    (folder / "run.json").write_text(json.dumps(record))
    later = PretrainWorkspace()
    later.refresh_from_folder()
    found = later.runs[run.run_id]
    assert found.status == "stopped" and found.checkpoint == str(folder / "checkpoint.safetensors")
    assert later.model_source(run.run_id)["checkpoint"] == found.checkpoint


def test_a_read_only_or_full_data_folder_is_one_line(monkeypatch, tmp_path):
    """Before: Train raised an uncaught OSError (a traceback, "Ready" in the status bar)."""
    ws = PretrainWorkspace()

    def full(*_a, **_k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pretrain.os, "mkdir", full)
    with pytest.raises(files.FileProblem) as problem:
        ws.new_run(TINY, {}, None)
    assert "No space left" in str(problem.value) and "\n" not in str(problem.value)
    assert ws.runs == {}
    monkeypatch.undo()
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    monkeypatch.setenv(pretrain.DATA_ENV, str(blocker / "data"))
    with pytest.raises(files.FileProblem):
        PretrainWorkspace().new_run(TINY, {}, None)


def test_a_run_whose_folder_was_deleted_says_so(tmp_path):
    """Before: Sample said "No trained model yet" and export said "Exported 1 files"."""
    import shutil

    ws = PretrainWorkspace()
    run = trained_run(ws)
    shutil.rmtree(run_folder(run.run_id))
    assert ws.folder_gone(run.run_id)
    assert ws.model_source(run.run_id)["checkpoint"] is None
    with pytest.raises(files.FileProblem) as gone:
        ws.export_run(run.run_id, tmp_path / "out")
    assert "is gone" in str(gone.value)
    assert not (tmp_path / "out").exists()
    ws.finish_run(run.run_id, "done")
    assert not run_folder(run.run_id).exists()  # never made again by a late write


ORPHAN = """
    import sys, time
    import multiprocessing as mp
    from explorer.core.gpt.child_process import run_training

    if __name__ == "__main__":
        config = {"vocab_size": 64, "context_length": 16, "emb_dim": 16, "n_heads": 2, "n_layers": 1}
        settings = {"steps": 10**6, "batch_size": 2, "device": "cpu", "eval_every": 0, "sample_every": 0,
                    "checkpoint_every": 0}
        ctx = mp.get_context("spawn")
        commands, records = ctx.Queue(), ctx.Queue()
        args = (config, settings, None, sys.argv[1], commands, records)
        child = ctx.Process(target=run_training, args=args)
        child.start()
        print("child", child.pid, flush=True)
        while True:
            if any(r.get("type") == "step" and r["step"] >= 3 for r in records.get()):
                print("trained", flush=True)
                time.sleep(600)  # killed here, as a GUI killed with -9 mid-run
"""


@pytest.mark.timeout(240)
@pytest.mark.slow
def test_the_training_process_of_a_killed_gui_stops_and_saves_its_checkpoint(tmp_path):
    """kill -9 of the window's process: its training process notices, stops after its step, saves, ends."""
    folder = tmp_path / "run-1"
    folder.mkdir()
    checkpoint = folder / "checkpoint.safetensors"
    parent = _spawn(ORPHAN, str(checkpoint))
    assert parent.stdout.readline().startswith("child")
    try:
        assert parent.stdout.readline().strip() == "trained", parent.stderr.read()[-2000:]
        assert files.folder_busy(folder)  # the training process holds its run folder
    finally:
        parent.kill()
        parent.wait()
    # it stops by itself (it looks for its parent every PARENT_CHECK_S), saves, and lets its folder go
    assert _released(folder), "the training process of a killed window kept training"
    from explorer.core.gpt.checkpoint import read_checkpoint

    assert read_checkpoint(checkpoint).step >= 3
    assert not [p for p in folder.iterdir() if p.name.startswith(files.TEMP_PREFIX)]


def _released(folder: Path, limit_s: float = 120.0) -> bool:
    """Wait (polling: no signal reaches this test) until no process holds `folder`'s lock."""
    import time

    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if not files.folder_busy(folder):
            return True
        time.sleep(0.2)
    return False
