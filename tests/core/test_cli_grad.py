"""The headless grad and graph commands, run as a user would: `python -m explorer ...`.

Only the Qt-free check needs a fresh interpreter; the other whole-CLI calls go through explorer.cli in this
process (tests/commands.py). tests/core/test_contracts.py runs the same grad and user-error calls in a
subprocess.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from explorer.cli import UserInputError
from explorer.commands import grad as grad_command
from explorer.commands import graph as graph_command
from tests.commands import run_in_process

ROOT = Path(__file__).resolve().parents[2]
SEED_LINES = ["x = 1.1", "y = 1.0", "w = param(2.2)", "b = param(0.0)", "z = w * x + b", "a = sigmoid(z)",
              "L = bce(a, y)"]  # fmt: skip
SEED = "\n".join(SEED_LINES)


def test_seed_json_through_the_cli_has_the_reference_numbers():
    done = run_in_process("grad", "-e", SEED, "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert set(data) >= {"output", "grads", "numeric_grads", "max_abs_error"}
    assert data["output"]["name"] == "L"
    assert round(data["output"]["value"], 4) == 0.0852
    assert round(data["grads"]["w"], 4) == -0.0898 and round(data["grads"]["b"], 4) == -0.0817
    assert round(data["numeric_grads"]["w"], 4) == -0.0898 and round(data["numeric_grads"]["b"], 4) == -0.0817
    assert 0 <= data["max_abs_error"] < 1e-5
    assert round(data["manual_grads"]["w"], 4) == -0.0898  # beyond the contract: the op table's formulas


def test_bad_input_exits_2_with_one_line_and_no_traceback():
    done = run_in_process("graph", "-e", "w = param(ones(3)); y = w * 2", "--format", "json")
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0] == "error: line 1:21: backward needs a scalar output: try `.sum()` (`y` has shape (3,))"
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_headless_commands_do_not_import_qt(tmp_path):
    script = (
        "import sys, contextlib, io\n"
        "from explorer.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    assert main(['grad', '-e', {SEED!r}, '--json']) == 0\n"
        f"    assert main(['graph', '-e', {SEED!r}, '-o', {str(tmp_path / 'g.dot')!r}]) == 0\n"
        "qt = sorted(m for m in sys.modules if m.startswith(('PySide6', 'pyqtgraph', 'shiboken')))\n"
        "print('QT:', qt)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "QT: []" in done.stdout


# The rest runs the command modules in-process, the way explorer.cli dispatches them: fast, and without
# importing the other commands' modules.


def main(argv: list[str]) -> int:
    module = {"grad": grad_command, "graph": graph_command}[argv[0]]
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    try:
        return module.run(parser.parse_args(argv[1:]))
    except UserInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def test_seed_human_output_with_semicolons(capsys):
    assert main(["grad", "-e", "; ".join(SEED_LINES)]) == 0
    out = capsys.readouterr().out
    assert "L = 0.0852" in out and "dL/dw = -0.0898" in out and "dL/db = -0.0817" in out
    assert "finite differences" in out and "manual formula" in out and "largest difference" in out


@pytest.mark.parametrize(
    "program, message",
    [
        ("x = 1.0\ny = sigmod(x)", "error: line 2:5: `sigmod` is not defined; did you mean"),
        ("x = __import__(1)", "error: line 1:5: `__import__`: names starting with `__` are not allowed"),
        # a literal backslash-n typed in a shell counts as a newline
        ("x = 1.0\\ny = x.sums()", "error: line 2:6: "),
    ],
)
def test_parse_errors_are_one_line_with_line_and_column(program, message, capsys):
    assert main(["grad", "-e", program]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message)


def test_grad_reads_a_file_and_reports_a_missing_one(tmp_path, capsys):
    path = tmp_path / "seed.expr"
    path.write_text("# Title: seed\n" + SEED + "\n", encoding="utf-8")
    assert main(["grad", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert round(data["grads"]["w"], 4) == -0.0898
    assert main(["grad", str(tmp_path / "missing.expr")]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert main(["grad"]) == 2
    assert "-e PROGRAM or a FILE" in capsys.readouterr().err


def test_grad_json_for_tensor_params_is_nested_lists(capsys):
    assert main(["grad", "-e", "W = param([[1.0, 2.0], [3.0, 4.0]]); L = (W * W).sum()", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["output"]["value"] == 30.0
    assert data["grads"]["W"] == [[2.0, 4.0], [6.0, 8.0]]
    assert len(data["numeric_grads"]["W"]) == 2


def test_grad_file_errors_name_the_file(tmp_path, capsys):
    path = tmp_path / "bad.expr"
    path.write_text("x = 1.0\ny = x +* 2\n", encoding="utf-8")
    assert main(["grad", str(path)]) == 2
    err = capsys.readouterr().err
    assert "bad.expr" in err and "line 2:" in err


def test_graph_json_has_nodes_edges_and_both_orders(tmp_path, capsys):
    out = tmp_path / "seed.json"
    assert main(["graph", "-e", SEED, "--format", "json", "-o", str(out)]) == 0
    data = json.loads(out.read_text(encoding="utf-8"))
    for node in data["nodes"]:
        assert {"id", "kind", "label", "value", "grad"} <= set(node)
    ids = {n["id"] for n in data["nodes"]}
    assert all(e["source"] in ids and e["target"] in ids for e in data["edges"])
    assert set(data["forward_order"]) == ids
    labels = {n["id"]: n["label"] for n in data["nodes"]}
    assert [labels[i] for i in data["backward_order"]][:3] == ["L", "a", "z"]
    w = next(n for n in data["nodes"] if n["label"] == "w")
    assert w["kind"] == "param" and round(w["grad"]["data"], 4) == -0.0898


def test_graph_dot_holds_values_and_grads(tmp_path, capsys):
    out = tmp_path / "seed.dot"
    assert main(["graph", "-e", SEED, "-o", str(out)]) == 0  # format from the suffix
    text = out.read_text(encoding="utf-8")
    assert text.startswith("digraph") and text.rstrip().endswith("}")
    assert "value 0.08519" in text and "grad -0.08983" in text
    assert text.count("->") == 6  # x and y are plain numbers inside the ops, as in torch


def test_graph_without_params_traces_forward_only(capsys):
    assert main(["graph", "-e", "A = [[1, 2, 3], [4, 5, 6]]; G = A @ A.T", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["backward_order"] == []
    out = next(n for n in data["nodes"] if n["label"] == "G")
    assert out["value"]["data"] == [[14, 32], [32, 77]] and out["value"]["dtype"] == "int64"


def test_graph_image_formats_need_a_path(capsys):
    assert main(["graph", "-e", SEED, "--format", "svg"]) == 2
    assert "needs -o PATH" in capsys.readouterr().err


def test_windows_files_and_graphs_cut_by_int_conversion(tmp_path, capsys):
    path = tmp_path / "crlf.expr"
    path.write_bytes(b"\xef\xbb\xbfx = param(1.5)\r\ny = x * x\r\n")  # byte-order mark, CRLF
    assert main(["grad", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["grads"]["x"] == 3.0
    assert main(["grad", "-e", "w = param(1.0); y = to(w, int64)"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("y = 1\n") and "does not depend on any param" in out
