"""Contracts of the headless commands, as the issues name them and external scripts will call them.

Each kind of call runs the way a script runs it at least once: `python -m explorer ...`, the console
script or `python main.py ...` in a subprocess (a command's output, a user error, a png drawn with Qt, a
screenshot, a screenshot's user error). The other calls of the same commands run in this process (`here`,
the same dispatch without a fresh interpreter's torch import), or, where they draw with Qt, together in
one fresh interpreter (`run_in_one_process`). Nothing here imports Qt.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import subprocess
import sys
import sysconfig
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from explorer.core.gpt.model import GPTConfig
from explorer.core.gpt.train import TrainSettings
from tests.commands import run_in_one_process
from tests.commands import run_in_process as here

ROOT = Path(__file__).resolve().parents[2]
SEED = "x = 1.1\ny = 1.0\nw = param(2.2)\nb = param(0.0)\nz = w * x + b\na = sigmoid(z)\nL = bce(a, y)\n"
# a model small enough to train a few steps in a second or two on a CPU
SMALL = ["--n-layers", "1", "--emb-dim", "32", "--n-heads", "2", "--context-length", "16",
         "--batch-size", "4", "--drop-rate", "0", "--lr", "1e-3", "--eval-every", "3", "--eval-batches", "2",
         "--sample-every", "0"]


def explorer(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`python -m explorer ARGS` as a script would run it."""
    return subprocess.run([sys.executable, "-m", "explorer", *args], capture_output=True, text=True,
                          cwd=cwd or ROOT, timeout=300)


def app(*args: str) -> subprocess.CompletedProcess:
    """`python main.py ARGS`, offscreen."""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=300, env=env)


def assert_ok(done: subprocess.CompletedProcess) -> None:
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr


def assert_user_error(done: subprocess.CompletedProcess, *words: str) -> str:
    """Exit status 2 and one line on stderr, no traceback; returns the line."""
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def help_text(*command: str) -> str:
    done = here(*command, "--help")
    assert_ok(done)
    return done.stdout


def json_lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    words = "the cat sat on a mat and the dog ran far away from home while birds sang".split()
    text = " ".join(words[(i * 7 + i // 3) % len(words)] for i in range(3000))
    path = tmp_path_factory.mktemp("corpus") / "words.txt"
    path.write_text(text, encoding="utf-8")
    return path


# -- grad --------------------------------------------------------------------------------------------


def test_grad_e_json_has_the_named_keys_and_the_reference_numbers():
    done = explorer("grad", "-e", SEED, "--json")
    assert_ok(done)
    data = json.loads(done.stdout)
    assert {"output", "grads", "numeric_grads", "max_abs_error"} <= set(data)
    assert data["output"]["name"] == "L"
    assert data["output"]["value"] == pytest.approx(0.0852, abs=5e-5)
    assert set(data["grads"]) == set(data["numeric_grads"]) == {"w", "b"}
    assert data["grads"]["w"] == pytest.approx(-0.0898263, abs=1e-6)
    assert data["grads"]["b"] == pytest.approx(-0.0816603, abs=1e-6)
    for name in ("w", "b"):
        assert data["numeric_grads"][name] == pytest.approx(data["grads"][name], abs=1e-5)
    assert 0 <= data["max_abs_error"] < 1e-5


def test_grad_file_prints_the_reference_numbers(tmp_path):
    path = tmp_path / "seed.expr"
    path.write_text(SEED, encoding="utf-8")
    done = here("grad", str(path))
    assert_ok(done)
    lines = done.stdout.splitlines()
    assert "L = 0.0852" in lines
    assert "dL/dw = -0.0898" in lines and "dL/db = -0.0817" in lines


def test_grad_json_gives_tensor_grads_as_nested_lists():
    done = here("grad", "-e", "W = param([[1.0, 2.0], [3.0, 4.0]])\nL = sum(W * W)", "--json")
    assert_ok(done)
    data = json.loads(done.stdout)
    assert data["grads"]["W"] == [[2.0, 4.0], [6.0, 8.0]]
    assert data["output"]["value"] == pytest.approx(30.0)


def test_console_script_runs_the_same_commands(tmp_path):
    script = Path(sysconfig.get_path("scripts")) / ("autograd-explorer" + (".exe" if os.name == "nt" else ""))
    assert script.is_file(), "the project is not installed: pip install -e ."
    done = subprocess.run([str(script), "grad", "-e", SEED, "--json"], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)
    assert_ok(done)
    assert json.loads(done.stdout)["grads"]["b"] == pytest.approx(-0.0816603, abs=1e-6)


def strict_json(text: str):
    """Parse as a strict reader would: the bare words NaN and Infinity are not JSON."""
    def refuse(word):
        raise ValueError(f"{word} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_grad_and_graph_json_stay_strict_json_for_infinite_gradients(tmp_path):
    program = "w = param(0.0)\nL = sqrt(w)"  # dL/dw = inf, finite differences NaN
    done = here("grad", "-e", program, "--json")
    assert_ok(done)
    data = strict_json(done.stdout)
    assert data["output"]["value"] == 0.0
    assert data["max_abs_error"] != 0.0  # autograd and finite differences do not agree here
    out = tmp_path / "g.json"
    assert_ok(here("graph", "-e", program, "--format", "json", "-o", str(out)))
    assert strict_json(out.read_text(encoding="utf-8"))["nodes"]


# -- graph -------------------------------------------------------------------------------------------


def test_graph_json_holds_nodes_edges_and_both_orders(tmp_path):
    out = tmp_path / "seed.json"
    assert_ok(here("graph", "-e", SEED, "--format", "json", "-o", str(out)))
    data = json.loads(out.read_text(encoding="utf-8"))
    ids = [n["id"] for n in data["nodes"]]
    assert len(ids) == len(set(ids))
    for node in data["nodes"]:
        assert {"id", "kind", "label", "value", "grad"} <= set(node)
        assert node["kind"] in ("leaf", "param", "const", "op")
    for edge in data["edges"]:
        assert edge["source"] in ids and edge["target"] in ids
    assert sorted(data["forward_order"]) == sorted(ids)
    assert set(data["backward_order"]) <= set(ids) and data["backward_order"]
    by_label = {n["label"]: n for n in data["nodes"]}
    assert by_label["w"]["kind"] == "param" and "x" not in by_label  # x = 1.1 stays a number in the op
    grad_w = by_label["w"]["grad"]
    grad_w = grad_w["data"] if isinstance(grad_w, dict) else grad_w
    assert grad_w == pytest.approx(-0.0898263, abs=1e-6)
    # the engine starts at the loss and ends with the params' AccumulateGrad
    position = {nid: i for i, nid in enumerate(data["backward_order"])}
    assert position[by_label["L"]["id"]] == 0
    assert position[by_label["a"]["id"]] < position[by_label["z"]["id"]] < position[by_label["w"]["id"]]


@pytest.fixture(scope="module")
def drawn(tmp_path_factory) -> tuple[Path, dict[str, subprocess.CompletedProcess]]:
    """The graph command's svg and its drawn formats into a missing folder: Qt draws them, so not in this
    process; one fresh interpreter runs them all (the png runs alone, as a script runs it)."""
    folder = tmp_path_factory.mktemp("drawn")
    calls = {"svg": ["graph", "-e", SEED, "--format", "svg", "-o", str(folder / "g.svg")]}
    for fmt in ("svg", "png"):
        out = folder / "missing" / f"g.{fmt}"
        calls[f"missing-{fmt}"] = ["graph", "-e", SEED, "--format", fmt, "-o", str(out)]
    return folder, dict(zip(calls, run_in_one_process(*calls.values()), strict=True))


def test_graph_dot_svg_and_png(tmp_path, drawn):
    dot = tmp_path / "g.dot"
    assert_ok(here("graph", "-e", SEED, "--format", "dot", "-o", str(dot)))
    text = dot.read_text(encoding="utf-8")
    assert text.lstrip().startswith("digraph") and "->" in text and "-0.08983" in text
    folder, done = drawn
    assert_ok(done["svg"])
    assert ET.parse(folder / "g.svg").getroot().tag.endswith("svg")
    png = tmp_path / "g.png"
    assert_ok(explorer("graph", "-e", SEED, "--format", "png", "-o", str(png)))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000


@pytest.mark.parametrize("fmt", ["json", "dot", "svg", "png"])
def test_graph_into_a_missing_folder_is_a_user_error(fmt, tmp_path, drawn):
    if fmt in ("svg", "png"):  # the drawn formats load Qt
        folder, done = drawn
        assert_user_error(done[f"missing-{fmt}"], "cannot write")
        assert not (folder / "missing").exists()
        return
    out = tmp_path / "missing" / f"g.{fmt}"
    assert_user_error(here("graph", "-e", SEED, "--format", fmt, "-o", str(out)), "cannot write")
    assert not out.exists()


# -- params ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("preset", "tie", "total"), [
    ("gpt2-124m", False, 163_009_536),
    ("gpt2-124m", True, 124_412_160),
])
def test_params_gpt2_counts(preset, tie, total):
    done = here("params", "--preset", preset, *(["--tie-weights"] if tie else []), "--json")
    assert_ok(done)
    data = json.loads(done.stdout)
    assert data["total"] == total
    parts = data["parameters"]
    assert sum(parts[k] for k in ("embeddings", "attention", "mlp", "norms", "head")) == total
    assert (parts["head"] == 0) == tie


def test_params_text_for_every_preset():
    for preset in ("tiny", "small", "gpt2-124m"):
        done = here("params", "--preset", preset)
        assert_ok(done)
        assert "total" in done.stdout and "memory" in done.stdout
    assert "163,009,536" in done.stdout


def test_params_model_flags_change_the_count():
    done = here("params", "--preset", "tiny", "--n-layers", "2", "--json")
    assert_ok(done)
    data = json.loads(done.stdout)
    assert data["config"]["n_layers"] == 2
    base = json.loads(here("params", "--preset", "tiny", "--json").stdout)
    assert data["total"] < base["total"]


# -- train -------------------------------------------------------------------------------------------


def test_train_has_a_flag_for_every_config_field_and_training_setting():
    text = help_text("train")
    named = ["--preset", "--steps", "--device", "--seed", "--corpus", "--json", "--config", "--out",
             "--save-every", "--resume", "--n-layers", "--emb-dim", "--context-length", "--batch-size",
             "--drop-rate", "--lr"]
    fields = [f.name for cls in (GPTConfig, TrainSettings) for f in dataclasses.fields(cls)]
    for name in named + [flag(f) for f in fields]:
        assert f"{name} " in text or f"{name}\n" in text or f"{name}," in text or f"{name}=" in text, name


def test_params_graph_and_grad_flags_exist():
    text = help_text("params")
    for name in ("--preset", "--tie-weights", "--json"):
        assert name in text
    assert "gpt2-124m" in text and "tiny" in text and "small" in text
    graph = help_text("graph")
    assert all(word in graph for word in ("--format", "json", "dot", "svg", "png", "-o"))
    grad = help_text("grad")
    assert "-e" in grad and "--json" in grad and "FILE" in grad


def test_app_help_lists_the_screenshot_options(app_calls):
    done = app_calls["help"]
    assert_ok(done)
    for name in ("--screenshot", "--workspace", "--example", "--preset", "--step"):
        assert name in done.stdout


@pytest.mark.slow
def test_train_json_lines_out_dir_and_resume_equal_an_uninterrupted_run(tmp_path, corpus):
    whole = tmp_path / "whole"
    common = ["train", "--preset", "tiny", "--device", "cpu", "--seed", "7", "--corpus", str(corpus), *SMALL]
    done = explorer(*common, "--steps", "6", "--json", "--out", str(whole), "--save-every", "3")
    assert_ok(done)
    records = json_lines(done.stdout)
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5, 6]
    for r in records:
        assert {"step", "train_loss", "tokens_per_s"} <= set(r)
    assert "val_loss" in records[2] and "val_loss" in records[5] and "val_loss" not in records[0]
    assert (whole / "step-3.safetensors").is_file()
    checkpoints = [p for p in whole.iterdir() if p.suffix == ".safetensors" and p.stem != "step-3"]
    assert checkpoints, list(whole.iterdir())
    with open(whole / "metrics.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert {"step", "train_loss"} <= set(rows[0]) and rows[-1]["step"] == "6"

    again = here(*common, "--steps", "6", "--json")  # a second run, in this process
    assert [r["train_loss"] for r in json_lines(again.stdout)] == [r["train_loss"] for r in records]

    resumed = here("train", "--resume", str(whole / "step-3"), "--steps", "6", "--json",
                   "--corpus", str(corpus))
    assert_ok(resumed)
    tail = json_lines(resumed.stdout)
    assert [r["step"] for r in tail] == [4, 5, 6]
    assert [r["train_loss"] for r in tail] == [r["train_loss"] for r in records[3:]]

    # a checkpoint of another model is refused with the reason, in one line
    clash = here("train", "--resume", str(whole / "step-3"), "--steps", "6", "--emb-dim", "64",
                     "--corpus", str(corpus))
    assert_user_error(clash, "emb_dim")

    other_seed = here(*[a if a != "7" else "8" for a in common], "--steps", "2", "--json")
    assert [r["train_loss"] for r in json_lines(other_seed.stdout)] != [r["train_loss"] for r in records[:2]]


@pytest.mark.slow
def test_train_device_cuda_trains_there_or_says_why_not(corpus):
    import torch

    done = here("train", "--preset", "tiny", "--device", "cuda", "--corpus", str(corpus), *SMALL,
                "--steps", "3", "--json")
    if torch.cuda.is_available():
        assert_ok(done)
        assert [r["step"] for r in json_lines(done.stdout)] == [1, 2, 3]
        assert "cuda" in done.stderr
    else:
        assert_user_error(done, "CUDA")


def write_config(tmp_path: Path) -> Path:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"n_layers": 1, "emb_dim": 32, "n_heads": 2, "context_length": 16,
                                  "batch_size": 4, "drop_rate": 0.0, "steps": 2, "eval_every": 0,
                                  "sample_every": 0}), encoding="utf-8")
    return config


@pytest.mark.slow
def test_train_config_file_sets_the_model_and_settings(tmp_path, corpus):
    done = here("train", "--config", str(write_config(tmp_path)), "--corpus", str(corpus),
                "--device", "cpu", "--json")
    assert_ok(done)
    assert [r["step"] for r in json_lines(done.stdout)] == [1, 2]
    assert "1 layers" in done.stderr and "emb 32" in done.stderr and "context 16" in done.stderr


@pytest.mark.slow
def test_train_flags_override_the_config_file(tmp_path, corpus):
    done = here("train", "--config", str(write_config(tmp_path)), "--corpus", str(corpus),
                "--device", "cpu", "--json", "--emb-dim", "16", "--steps", "1")
    assert_ok(done)
    assert [r["step"] for r in json_lines(done.stdout)] == [1]
    assert "emb 16" in done.stderr


# -- bad input: exit status 2, one line on stderr, no traceback --------------------------------------


BAD_INPUT = [
    (["grad", "-e", "x = ("], ["line 1:"]),
    (["grad", "-e", "w = param(1.0)\nL = foo(w)"], ["line 2:", "foo"]),
    (["grad", "-e", "__import__('os').system('true')"], ["line 1:"]),
    (["grad", "-e", "w = param([1.0, 2.0])\nL = w * 2.0", "--json"], ["scalar"]),
    (["grad", "no-such-file.expr"], ["no-such-file.expr"]),
    (["grad"], ["-e"]),
    (["graph", "-e", "x = (", "--format", "json", "-o", "unused.json"], ["line 1:"]),
    (["graph", "-e", SEED, "--format", "png"], ["-o"]),
    (["params", "--preset", "gpt2-124m", "--n-heads", "5"], ["n_heads"]),
]


@pytest.mark.parametrize(("args", "words"), BAD_INPUT)
def test_bad_input_is_one_line_and_status_2(args, words, tmp_path, monkeypatch):
    if args == BAD_INPUT[0][0]:
        done = explorer(*args, cwd=tmp_path)
    else:
        monkeypatch.chdir(tmp_path)
        done = here(*args)
    assert_user_error(done, *words)
    assert not (tmp_path / "unused.json").exists()


@pytest.mark.parametrize("args", [
    ["params", "--preset", "gpt3"],
    ["train", "--preset", "gpt3"],
    ["graph", "-e", "w = param(1.0)", "--format", "bmp"],
    ["train", "--steps", "many"],
])
def test_unknown_choices_exit_2_naming_the_bad_value(args):
    done = (explorer if args[0] == "params" else here)(*args)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert args[-1] in done.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("case", ["heads", "corrupt", "missing", "config", "save_every", "corpus", "device"])
def test_train_bad_input_is_one_line_and_status_2(case, tmp_path, corpus, monkeypatch):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00garbage" * 10)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    args = {
        "heads": ["--n-heads", "5", "--emb-dim", "32"],
        "corrupt": ["--resume", str(bad)],
        "config": ["--config", str(broken)],
        "save_every": ["--save-every", "2"],
        "missing": ["--resume", str(tmp_path / "no-such-checkpoint")],
        "corpus": ["--corpus", str(tmp_path / "missing.txt")],
        "device": ["--device", "tpu-please"],
    }[case]
    monkeypatch.chdir(tmp_path)
    done = here("train", "--steps", "2", "--device", "cpu", *args)
    assert_user_error(done)


# -- screenshots -------------------------------------------------------------------------------------


def is_png(path: Path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


# One real `python main.py --screenshot` per kind of outcome (a picture; a user error, which must be the
# process's only stderr line); the other workspaces' pictures and errors, and the app's help, share one
# fresh interpreter: one window after the other, as `main.py` makes each.
APP_CALLS = {
    "network": ["--workspace", "network", "--preset", "seed", "--step", "3"],
    "pretrain": ["--workspace", "pretrain", "--preset", "gpt2-124m"],
    "bad-pretrain": ["--workspace", "pretrain", "--preset", "no_such_preset"],
    "bad-network": ["--workspace", "network", "--preset", "no_such_preset"],
    "bad-example": ["--workspace", "expression", "--example", "no_such_example"],
}


@pytest.fixture(scope="module")
def app_calls(tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    folder = tmp_path_factory.mktemp("shots")
    calls = {"help": ["--help"]}
    for key, args in APP_CALLS.items():
        calls[key] = ["--screenshot", str(folder / f"{key}.png"), *args]
    done = run_in_one_process(*calls.values(), env={"QT_QPA_PLATFORM": "offscreen"})
    return dict(zip(calls, done, strict=True))


def shot_path(done: subprocess.CompletedProcess) -> Path:
    return Path(done.args[done.args.index("--screenshot") + 1])


@pytest.mark.slow
def test_screenshot_writes_a_png(tmp_path):
    out = tmp_path / "shot.png"
    args = ["--workspace", "expression", "--example", "seed_sigmoid_bce", "--step", "5"]
    done = app("--screenshot", str(out), *args)
    assert_ok(done)
    assert is_png(out)


@pytest.mark.slow
@pytest.mark.parametrize("key", ["network", "pretrain"])
def test_screenshot_of_each_workspace_writes_a_png(key, app_calls):
    done = app_calls[key]
    assert_ok(done)
    assert is_png(shot_path(done))


@pytest.mark.slow
@pytest.mark.parametrize("key", ["bad-pretrain", "bad-network"])  # the expression workspace's: the next test
def test_screenshot_bad_name_exits_2_with_an_error_line(key, app_calls):
    done = app_calls[key]
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no_such" in errors[0], done.stderr
    assert not shot_path(done).exists()


@pytest.mark.slow
def test_screenshot_bad_example_of_the_named_workspace_is_one_stderr_line(app_calls):
    done = app_calls["bad-example"]  # after other windows: no Qt noise of its own on stderr either
    assert_user_error(done, "no_such_example")
    assert not shot_path(done).exists()


@pytest.mark.slow
def test_screenshot_bad_example_is_exactly_one_stderr_line(tmp_path):
    out = tmp_path / "shot.png"  # no --workspace: the expression workspace, the default
    assert_user_error(app("--screenshot", str(out), "--example", "no_such_example"), "no_such_example")
    assert not out.exists()
