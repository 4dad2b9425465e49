"""`params` and `train` commands through the CLI's command-module protocol."""

import argparse
import contextlib
import glob
import importlib
import json
import os
import pickle
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from explorer.cli import UserInputError
from explorer.core.gpt.checkpoint import read_checkpoint
from tests.commands import run_in_one_process

SMALL = ["--n-layers", "1", "--emb-dim", "32", "--n-heads", "2", "--context-length", "16",
         "--batch-size", "4", "--eval-every", "3", "--eval-batches", "2", "--sample-every", "0",
         "--threads", "1"]


def cli(argv, capsys) -> tuple[int, str, str]:
    """Dispatch like explorer.cli.main (only our two commands, so others' modules are not needed)."""
    parser = argparse.ArgumentParser(prog="explorer")
    sub = parser.add_subparsers(dest="command")
    for name in ("params", "train"):
        module = importlib.import_module(f"explorer.commands.{name}")
        assert module.HELP
        cmd = sub.add_parser(name)
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)
    args = parser.parse_args(argv)
    try:
        code = args._run(args)
    except UserInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 2
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def corpus(tmp_path):
    from explorer.core.gpt.data import default_corpus

    path = tmp_path / "corpus.txt"
    path.write_text(default_corpus()[:20_000], encoding="utf-8")
    return str(path)


def json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_params_json_for_gpt2(capsys):
    code, out, _ = cli(["params", "--preset", "gpt2-124m", "--json"], capsys)
    data = json.loads(out)
    assert code == 0 and data["total"] == 163_009_536 and data["parameters"]["head"] == 50257 * 768
    code, out, _ = cli(["params", "--preset", "gpt2-124m", "--tie-weights", "--json"], capsys)
    data = json.loads(out)
    assert data["total"] == 124_412_160 and data["parameters"]["total"] == 124_412_160
    assert data["memory"]["float32"]["weights"] == 4 * 124_412_160


def test_params_table(capsys):
    code, out, _ = cli(["params", "--preset", "gpt2-124m"], capsys)
    assert code == 0
    for word in ("embeddings", "attention", "mlp", "norms", "head", "163,009,536", "bfloat16", "optimizer"):
        assert word in out


def test_params_says_what_a_char_level_preset_really_trains(capsys):
    from explorer.core.gpt.data import char_vocab_size
    from explorer.core.gpt.model import PRESETS, count_parameters

    chars = char_vocab_size()
    trained = count_parameters(PRESETS["tiny"].replace(vocab_size=chars))["total"]
    _, out, _ = cli(["params", "--preset", "tiny"], capsys)
    assert f"has {chars} characters, giving {trained:,} parameters" in out
    _, out, _ = cli(["params", "--preset", "gpt2-124m"], capsys)
    assert "note:" not in out  # a BPE preset: vocab_size is a real setting


def test_params_bad_config_exits_2(capsys):
    code, _, err = cli(["params", "--preset", "tiny", "--n-heads", "3"], capsys)
    assert code == 2 and "divisible by n_heads" in err


def test_train_json_lines(capsys, corpus):
    code, out, err = cli(["train", "--preset", "tiny", "--steps", "6", "--seed", "1", "--corpus", corpus,
                          "--device", "cpu", "--json", *SMALL], capsys)
    assert code == 0, err
    lines = json_lines(out)
    assert [r["step"] for r in lines] == [1, 2, 3, 4, 5, 6]
    for r in lines:
        assert {"step", "train_loss", "tokens_per_s"} <= set(r) and r["tokens_per_s"] > 0
    assert [r["step"] for r in lines if "val_loss" in r] == [3, 6]
    assert "initial_val_loss" in lines[0]
    # Same seed, same numbers.
    _, again, _ = cli(["train", "--steps", "6", "--seed", "1", "--corpus", corpus, "--json", *SMALL], capsys)
    assert [r["train_loss"] for r in json_lines(again)] == [r["train_loss"] for r in lines]


def test_train_out_save_every_and_resume(capsys, corpus, tmp_path):
    out_dir = tmp_path / "run"
    code, _, err = cli(["train", "--steps", "4", "--corpus", corpus, "--out", str(out_dir),
                        "--save-every", "2", "--json", *SMALL], capsys)
    assert code == 0, err
    names = sorted(p.name for p in out_dir.iterdir())
    assert names == ["checkpoint.safetensors", "histograms.safetensors", "metrics.csv",
                     "step-2.safetensors"]
    before = {p.name: p.read_bytes() for p in out_dir.iterdir()}
    # an explicit --out of the run's own folder would replace its final checkpoint and metrics: refused
    code, _, err = cli(["train", "--resume", str(out_dir / "step-2"), "--steps", "6", "--json",
                        "--out", str(out_dir)], capsys)
    assert code == 2 and "would overwrite the run it resumes from" in err
    assert len(err.strip().splitlines()) == 1
    assert {p.name: p.read_bytes() for p in out_dir.iterdir()} == before
    # without --out the continued run goes to a new folder beside it, and says where
    code, out, err = cli(["train", "--resume", str(out_dir / "step-2"), "--steps", "6", "--json"], capsys)
    assert code == 0, err
    assert "run-resumed-2" in err and [r["step"] for r in json_lines(out)] == [3, 4, 5, 6]
    assert (tmp_path / "run-resumed-2" / "checkpoint.safetensors").is_file()
    assert {p.name: p.read_bytes() for p in out_dir.iterdir()} == before
    cont = tmp_path / "continued"
    code, out, err = cli(["train", "--resume", str(out_dir / "step-2"), "--steps", "6", "--json",
                          "--out", str(cont)], capsys)
    assert code == 0, err
    assert [r["step"] for r in json_lines(out)] == [3, 4, 5, 6]
    assert (cont / "checkpoint.safetensors").is_file()
    assert {p.name: p.read_bytes() for p in out_dir.iterdir()} == before
    final = str(out_dir / "checkpoint.safetensors")
    code, _, err = cli(["train", "--resume", final, "--n-layers", "3"], capsys)
    assert code == 2 and "n_layers is 1 in the checkpoint but 3" in err
    code, _, err = cli(["train", "--resume", final, "--preset", "small"], capsys)
    assert code == 2 and "does not match the requested model" in err and "emb_dim is 32" in err


@pytest.mark.parametrize("content", ["pickle", "truncated", "text"])
def test_resume_refuses_bad_checkpoints(capsys, tmp_path, content):
    path = tmp_path / "bad.ckpt"
    if content == "pickle":
        path.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    elif content == "truncated":
        path.write_bytes(b"\x40\x00\x00\x00\x00\x00\x00\x00{")
    else:
        path.write_text("hello", encoding="utf-8")
    code, _, err = cli(["train", "--resume", str(path)], capsys)
    assert code == 2
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1


def test_config_file_and_bad_values(capsys, corpus, tmp_path):
    cfg = tmp_path / "cfg.json"
    model = {"n_layers": 1, "emb_dim": 32, "n_heads": 2, "context_length": 16}
    settings = {"batch_size": 4, "steps": 2, "eval_every": 0, "sample_every": 0}
    cfg.write_text(json.dumps({"config": model, "settings": settings}))
    code, out, err = cli(["train", "--config", str(cfg), "--corpus", corpus, "--json"], capsys)
    assert code == 0, err
    assert len(json_lines(out)) == 2
    cfg.write_text(json.dumps({"n_layer": 2}))
    code, _, err = cli(["train", "--config", str(cfg)], capsys)
    assert code == 2 and "unknown fields: n_layer" in err
    code, _, err = cli(["train", "--lr", "-1"], capsys)
    assert code == 2 and "lr must be positive" in err
    code, _, err = cli(["train", "--save-every", "5"], capsys)
    assert code == 2 and "--out" in err
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    code, _, err = cli(["train", "--corpus", str(empty)], capsys)
    assert code == 2 and "empty" in err


def full_cli_or_skip() -> None:
    try:
        from explorer.cli import build_parser

        build_parser()
    except ImportError as exc:  # another command module of the team is not there yet
        pytest.skip(f"full CLI not importable yet: {exc}")


def entry_points(*calls: list[str]) -> list[subprocess.CompletedProcess]:
    """The calls as `python -m explorer ARGV` makes them, one after the other in one fresh interpreter."""
    full_cli_or_skip()
    return run_in_one_process(*calls, timeout=120)


@pytest.fixture(scope="module")
def real_entry_point(tmp_path_factory) -> tuple[dict[str, subprocess.CompletedProcess], Path]:
    folder = tmp_path_factory.mktemp("entry")
    evil = folder / "evil.pt"
    evil.write_bytes(pickle.dumps(Payload(str(folder / "ran"))))
    params, pickled = entry_points(["params", "--preset", "gpt2-124m", "--json"],
                                   ["train", "--resume", str(evil)])
    return {"params": params, "pickle": pickled}, folder / "ran"


@pytest.mark.slow
def test_real_entry_point_params(real_entry_point):
    done = real_entry_point[0]["params"]
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["total"] == 163_009_536


@pytest.mark.slow
def test_real_entry_point_refuses_a_pickle_in_one_line(real_entry_point):
    calls, marker = real_entry_point
    done = calls["pickle"]
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and "pickle" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not marker.exists()


class Payload:
    """Unpickling this would create a file."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.slow
def test_ctrl_c_writes_a_final_checkpoint_and_exits_130(corpus, tmp_path):
    full_cli_or_skip()
    out = tmp_path / "out"
    command = [sys.executable, "-m", "explorer", "train", *SMALL, "--corpus", corpus, "--steps", "100000",
               "--json", "--out", str(out)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = json.loads(proc.stdout.readline())  # a step finished: the run is under way
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    checkpoint = out / "checkpoint.safetensors"
    saved = read_checkpoint(checkpoint)
    last = json_lines(stdout)[-1] if stdout.strip() else first
    assert saved.step >= first["step"] and saved.step >= last["step"]
    assert f"checkpoint written to {checkpoint}" in stderr and "Traceback" not in stderr
    assert (out / "metrics.csv").exists()
    assert not list(out.glob(".*tmp*"))  # written atomically: no temporary file left behind


def session_processes(session: int) -> list[int]:
    """Process ids in the session `session` (Linux /proc), zombies left out."""
    pids = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = open(stat).read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[3]) == session:
            pids.append(int(stat.split("/")[2]))
    return pids


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.slow
def test_ctrl_c_in_a_terminal_stops_a_run_split_over_processes(corpus, tmp_path):
    # A terminal sends Ctrl-C to every process of the command (the helper too): the helper ignores it,
    # the run stops after its step with its checkpoint, and no helper is left behind.
    full_cli_or_skip()
    out = tmp_path / "out"
    command = [sys.executable, "-m", "explorer", "train", *SMALL, "--corpus", corpus, "--steps", "100000",
               "--batch-split", "processes", "--threads", "2", "--out", str(out)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        lines = [proc.stdout.readline()]
        # a step after the first has finished (a "step 0" evaluation line comes before any step: a Ctrl-C
        # then would rightly save step 0): the helper computes
        while not (lines[-1].startswith("step") and int(lines[-1].split()[1].rstrip(":")) >= 1):
            lines.append(proc.stdout.readline())
            assert lines[-1], proc.stderr.read()
        done = int(lines[-1].split()[1].rstrip(":"))
        said = "each batch split in 2 parts, one core each (this process and a helper process)"
        assert any(said in line for line in lines), lines
        helpers = [pid for pid in session_processes(proc.pid)
                   if b"part_process" in open(f"/proc/{pid}/cmdline", "rb").read()]
        assert len(helpers) == 1
        os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert read_checkpoint(out / "checkpoint.safetensors").step >= done >= 1
    assert "Traceback" not in stderr
    # the run's session may still hold multiprocessing's resource tracker (the shared block registers
    # with it), which ends on its own once the command has exited: wait for each process's end (a pidfd
    # turns readable then), never more than 20 s in all, then none may be left
    deadline = time.monotonic() + 20
    for pid in session_processes(proc.pid):
        with contextlib.suppress(ProcessLookupError):
            fd = os.pidfd_open(pid)
            try:
                select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            finally:
                os.close(fd)
    assert session_processes(proc.pid) == []


# -- issue 24: --out is one run's, and a mid-run input error is said once -------------------------------


def test_out_refuses_a_folder_another_process_is_writing(capsys, corpus, tmp_path):
    """Before: two `train --out DIR` at once both exited 0, the later replacing the earlier's files."""
    from explorer.core import files

    out_dir = tmp_path / "run"
    out_dir.mkdir()
    with files.FolderLock(out_dir):  # what a train still writing there holds (it dies with its process)
        code, out, err = cli(["train", "--steps", "2", "--corpus", corpus, "--out", str(out_dir), *SMALL],
                             capsys)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "another process is writing" in err
    assert list(out_dir.iterdir()) == []


def test_out_refuses_a_folder_holding_another_run_unless_overwrite(capsys, corpus, tmp_path):
    out_dir = tmp_path / "run"
    argv = ["train", "--steps", "2", "--corpus", corpus, "--out", str(out_dir), *SMALL]
    code, _, err = cli([*argv, "--save-every", "1"], capsys)
    assert code == 0, err
    before = {p.name: p.read_bytes() for p in out_dir.iterdir()}
    assert "step-1.safetensors" in before
    code, out, err = cli([*argv, "--seed", "9"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "already holds a run" in err
    assert "--overwrite" in err and {p.name: p.read_bytes() for p in out_dir.iterdir()} == before
    code, _, err = cli([*argv, "--seed", "9", "--overwrite"], capsys)
    assert code == 0, err
    after = {p.name: p.read_bytes() for p in out_dir.iterdir()}
    assert sorted(after) == [  # the earlier run's step-1 went too
        "checkpoint.safetensors", "histograms.safetensors", "metrics.csv"]
    assert after["checkpoint.safetensors"] != before["checkpoint.safetensors"]


def test_an_input_error_in_the_middle_of_a_run_is_printed_once(capsys, corpus, tmp_path):
    out_dir = tmp_path / "run"
    (out_dir / "step-1.safetensors").mkdir(parents=True)  # the first periodic checkpoint cannot be written
    code, _, err = cli(["train", "--steps", "3", "--corpus", corpus, "--out", str(out_dir),
                        "--save-every", "1", *SMALL], capsys)
    assert code == 2
    errors = [line for line in err.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and "step-1.safetensors" in errors[0], err
