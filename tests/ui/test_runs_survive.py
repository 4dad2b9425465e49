"""Issue 24, never lose a run: closing the window while a run trains, two windows on one data folder,
a training process killed mid-run (training runs in real spawned processes)."""

from __future__ import annotations

import os
import signal

import pytest
from PySide6.QtCore import QSettings

from explorer.core.gpt.checkpoint import read_checkpoint
from explorer.core.workspaces.pretrain import PretrainWorkspace, run_folder
from explorer.ui import main_window as mw
from explorer.ui.pretrain.panel import PretrainPanel

# A model whose steps take milliseconds; the tests stop it long before `steps`.
FAST = {"context_length": 16, "emb_dim": 32, "n_heads": 2, "n_layers": 1, "drop_rate": 0.0,
        "batch_size": 4, "steps": 100000, "warmup_steps": 5, "eval_every": 50, "sample_every": 0,
        "lr": 0.001, "eval_batches": 1, "checkpoint_every": 0}
WAIT_MS = 300000  # bounds a hang, not a speed: two torch children start slowly on a busy machine


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("The quick brown fox jumps over the lazy dog. A stitch in time saves nine.\n" * 40,
                    encoding="utf-8")
    return str(path)


def _window(qtbot, tmp_path) -> mw.MainWindow:
    window = mw.MainWindow(settings=QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat))
    qtbot.addWidget(window)
    window.show_workspace("pretrain")
    window.show()
    qtbot.waitUntil(lambda: "pretrain" in window.panels, timeout=WAIT_MS)
    return window


@pytest.mark.timeout(1200)
@pytest.mark.slow
def test_closing_the_window_while_a_run_trains_keeps_the_run_and_continue_works(qtbot, tmp_path, corpus):
    """Before: the session was saved before the run stopped, and the process was ended 0.8 s into its save:
    the reopened window listed the run "stopped" without a checkpoint, and Continue refused it."""
    window = _window(qtbot, tmp_path)
    panel = window.panels["pretrain"]
    panel.form.set_values({**FAST, "corpus": corpus})  # no periodic checkpoint: the close must write it
    assert panel.train()
    run = panel.runs()[-1]
    qtbot.waitUntil(lambda: run.steps_done() >= 3, timeout=WAIT_MS)
    notes = []
    window.close()
    notes.append(panel.banner.text())
    assert not panel.is_training()
    assert "before closing" in notes[0] and "30 s" in notes[0]
    assert run.status == "stopped" and run.checkpoint
    saved_step = read_checkpoint(run.checkpoint).step
    assert saved_step >= 3

    again = _window(qtbot, tmp_path)  # the next start: the same settings, the same data folder
    later = again.panels["pretrain"]
    qtbot.waitUntil(lambda: run.run_id in later.workspace.runs, timeout=WAIT_MS)
    listed = later.workspace.runs[run.run_id]
    assert listed.checkpoint == run.checkpoint and listed.status == "stopped"
    later.form.set_values({"steps": 2, "corpus": corpus})
    assert later.continue_run(run.run_id), later.banner.text()
    continued = later.runs()[-1]
    assert continued.continues == run.run_id
    qtbot.waitUntil(lambda: not later.is_training(), timeout=WAIT_MS)
    assert continued.status == "done", continued.message
    assert read_checkpoint(continued.checkpoint).step == saved_step + 2
    again.close()


@pytest.mark.timeout(1200)
@pytest.mark.slow
def test_two_windows_training_at_once_share_no_folder_and_see_each_others_runs(qtbot, corpus):
    """Before: 4 of 12 trainings pressed at once collided, their checkpoints holding the other window's
    model, and each window listed only its own runs."""
    panels = [PretrainPanel(workspace=PretrainWorkspace()) for _ in range(2)]
    for panel, seed in zip(panels, (11, 22), strict=True):
        qtbot.addWidget(panel)
        panel.form.set_values({**FAST, "corpus": corpus, "seed": seed})
    assert all(panel.train() for panel in panels)
    mine, theirs = (panel.runs()[-1] for panel in panels)
    assert mine.run_id != theirs.run_id
    assert run_folder(mine.run_id) != run_folder(theirs.run_id)
    qtbot.waitUntil(lambda: mine.steps_done() >= 2 and theirs.steps_done() >= 2, timeout=WAIT_MS)
    for panel in panels:
        panel.stop()
    qtbot.waitUntil(lambda: not any(panel.is_training() for panel in panels), timeout=WAIT_MS)
    for run, seed in ((mine, 11), (theirs, 22)):
        assert read_checkpoint(run.checkpoint).settings["seed"] == seed  # each checkpoint is its own
        assert os.path.dirname(run.checkpoint) == str(run_folder(run.run_id))
    both = {mine.run_id, theirs.run_id}
    for panel in panels:  # each window lists the other's run too, as the folder changes (it is watched)
        qtbot.waitUntil(lambda p=panel: both <= set(p.workspace.runs), timeout=WAIT_MS)
        qtbot.waitUntil(lambda p=panel: all(p.workspace.runs[r.run_id].checkpoint for r in (mine, theirs)),
                        timeout=WAIT_MS)
        panel.shutdown()


@pytest.mark.timeout(1200)
@pytest.mark.slow
def test_a_killed_training_process_leaves_its_last_periodic_checkpoint(qtbot, corpus):
    """Before: GUI runs wrote no checkpoint until they ended; a kill -9 lost the whole run."""
    panel = PretrainPanel(workspace=PretrainWorkspace())
    qtbot.addWidget(panel)
    panel.form.set_values({**FAST, "corpus": corpus, "checkpoint_every": 2})
    assert panel.form.edit("checkpoint_every").toolTip()
    assert panel.train()
    run = panel.runs()[-1]
    qtbot.waitUntil(lambda: run.checkpoint is not None and run.steps_done() >= 5, timeout=WAIT_MS)
    with qtbot.waitSignal(panel.sig_run_finished, timeout=WAIT_MS):
        os.kill(panel._process._process.pid, signal.SIGKILL)
    assert run.status == "error"
    assert panel.workspace.flush_files(60)  # this window's own run files, written on its writer thread
    checkpoint = read_checkpoint(run_folder(run.run_id) / "checkpoint.safetensors")
    assert checkpoint.step >= 2 and checkpoint.step % 2 == 0
    later = PretrainWorkspace()  # the next start
    later.refresh_from_folder()
    assert later.runs[run.run_id].checkpoint == run.checkpoint
    assert not [p for p in run_folder(run.run_id).iterdir() if p.name.startswith(".explorer-tmp-")]
    panel.shutdown()


def test_a_read_only_data_folder_and_a_deleted_run_folder_are_one_line_in_the_panel(qtbot, tmp_path,
                                                                                   monkeypatch):
    """Before: Train raised an uncaught OSError; a deleted run said "No trained model yet" and exported."""
    import shutil

    from tests.trained import trained_run

    panel = PretrainPanel(workspace=PretrainWorkspace())
    qtbot.addWidget(panel)
    run = trained_run(panel.workspace)
    shutil.rmtree(run_folder(run.run_id))
    panel.history.select_run(run.run_id)
    panel.sample()
    assert "is gone" in panel.banner.text() and "No trained model" not in panel.banner.text()
    assert panel.export_run(run.run_id, str(tmp_path / "out")) == []
    assert "is gone" in panel.banner.text()
    assert panel.continue_run(run.run_id) is False and "is gone" in panel.banner.text()

    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    monkeypatch.setenv("AUTOGRAD_EXPLORER_DATA", str(blocker / "data"))
    panel.form.set_values({**FAST, "steps": 2})
    assert panel.train() is False
    assert "Could not start training" in panel.banner.text() and "\n" not in panel.banner.text()
    assert not panel.is_training()
    panel.shutdown()
