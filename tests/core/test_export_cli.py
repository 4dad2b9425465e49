"""`python -m explorer export`: the four sources, both formats, train's flags, and bad input as one line."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from explorer.cli import main
from explorer.core.lang.examples import examples_dir

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_command_runs_as_a_user_runs_it(tmp_path):
    out = tmp_path / "seed.py"
    done = subprocess.run([sys.executable, "-m", "explorer", "export", "-e", "w = param(2.0)\\nL = w * w",
                           "-o", str(out)], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stdout
    ast.parse(out.read_text(encoding="utf-8"))


def test_a_program_file_becomes_a_script_titled_after_it(tmp_path, capsys):
    out = tmp_path / "out" / "broadcasting.py"  # the folder is made
    assert main(["export", str(examples_dir() / "broadcasting.expr"), "--to", "script", "-o", str(out)]) == 0
    code = out.read_text(encoding="utf-8")
    assert code.startswith('"""Broadcasting: one bias for every row: exported from Autograd Explorer')
    ast.parse(code)


def test_a_network_preset_becomes_a_valid_notebook(tmp_path):
    out = tmp_path / "net.ipynb"
    assert main(["export", "--network", "toy-2d", "--to", "notebook", "-o", str(out)]) == 0
    nb = nbformat.read(out, as_version=4)
    nbformat.validate(nb)
    assert any("class Net(nn.Module)" in c.source for c in nb.cells if c.cell_type == "code")


def test_gpt_takes_trains_flags_and_config_file(tmp_path):
    config = tmp_path / "config.json"
    config.write_text('{"emb_dim": 32, "n_heads": 2}', encoding="utf-8")
    out = tmp_path / "gpt.py"
    assert main(["export", "--gpt", "tiny", "--n-layers", "3", "--steps", "7", "--lr", "0.002",
                 "--config", str(config), "-o", str(out)]) == 0
    code = out.read_text(encoding="utf-8")
    for line in ("n_layers: int = 3", "steps: int = 7", "lr: float = 0.002", "emb_dim: int = 32",
                 "n_heads: int = 2"):
        assert line in code, line
    ast.parse(code)


@pytest.mark.parametrize("argv, message", [
    (["--gpt", "huge"], "unknown GPT preset 'huge'"),
    (["--network", "deep"], "unknown network preset 'deep'"),
    ([], "give exactly one of"),
    (["-e", "x = 1", "--network", "seed"], "give exactly one of"),
    (["-e", "x = = 1"], "line 1:5"),
    (["--network", "seed", "--to", "pdf"], "--to must be script or notebook"),
    (["--network", "seed", "--n-layers", "2"], "--n-layers is a model or training flag"),
    (["--gpt", "tiny", "--n-heads", "3"], "divisible by n_heads"),
    (["--gpt", "tiny", "--corpus", "no-such-file.txt"], "corpus no-such-file.txt"),
    (["--network", "seed", "NOFILE"], "give exactly one of"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, argv, message):
    assert main(["export", *argv, "-o", str(tmp_path / "x.py")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "x.py").exists()


def test_no_output_path_and_an_unwritable_one_are_one_line_each(tmp_path, capsys):
    assert main(["export", "--network", "seed"]) == 2
    assert "-o PATH" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    assert main(["export", "--network", "seed", "-o", str(blocker / "sub" / "x.py")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot write") and err.count("\n") == 1


def test_a_program_naming_float_and_using_1e999_exports_and_runs(tmp_path):
    # issue 24: the old exporter wrote `float("inf")`, which broke once the program had its own `float`
    source = tmp_path / "shadow.expr"
    source.write_text("import torch\nfloat = torch.tensor(2.0, requires_grad=True)\nbig = 1e999\n"
                      "y = float * 3\ny.backward()\n", encoding="utf-8")
    out = tmp_path / "shadow.py"
    assert main(["export", str(source), "-o", str(out)]) == 0
    done = subprocess.run([sys.executable, str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "output y = 6.0" in done.stdout and "grad dy/dfloat = 3.0" in done.stdout


def test_a_program_whose_bytes_are_not_utf8_is_one_clear_line(tmp_path, capsys):
    # issue 24: this was reported as "nested too deeply or is too large to read"
    source = tmp_path / "bad.expr"
    source.write_bytes(b"x = 1.0\ny = \xff\xfe 2\n")
    assert main(["grad", str(source)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not UTF-8" in err[0] and "nested" not in err[0]
