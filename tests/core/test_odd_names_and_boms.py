"""File names that are not UTF-8 and files that start with a byte-order mark: one clear line or success,
never a traceback (issue 24, item 6)."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from explorer.cli import main
from explorer.commands.train import read_config_file
from explorer.core import files
from explorer.core.lessons.progress import Progress
from explorer.core.lessons.runner import lessons_dir, load_lesson
from explorer.core.workspaces.session import Workspaces, parse_session, read_session, write_session

ROOT = Path(__file__).resolve().parents[2]
BOM = b"\xef\xbb\xbf"
PROGRAM = b"w = param(2.0)\nL = w * w\n"
NOT_UTF8 = os.fsdecode(b"caf\xe9")  # a Latin-1 name, as another system wrote it


def test_export_of_a_file_whose_name_is_not_utf8(tmp_path, capsys):
    source = tmp_path / f"{NOT_UTF8}.expr"
    source.write_bytes(PROGRAM)
    out = tmp_path / "out.py"
    assert main(["export", str(source), "-o", str(out)]) == 0
    code = out.read_text(encoding="utf-8")  # the script is UTF-8: the odd byte reads as U+FFFD
    ast.parse(code)
    assert "caf\ufffd" in code
    assert "wrote" in capsys.readouterr().out


def test_export_to_a_name_that_is_not_utf8_through_a_strict_stdout(tmp_path):
    source = tmp_path / f"{NOT_UTF8}.expr"
    source.write_bytes(PROGRAM)
    out = tmp_path / f"{NOT_UTF8}.py"
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}  # strict errors: a surrogate would raise
    done = subprocess.run([sys.executable, "-m", "explorer", "export", os.fsencode(source),
                           "-o", os.fsencode(out)], capture_output=True, cwd=ROOT, env=env, timeout=120)
    assert done.returncode == 0, done.stderr.decode("utf-8", "replace")
    assert b"Traceback" not in done.stderr
    assert done.stdout.decode("utf-8").startswith("wrote ")
    assert out.exists()


def test_writing_text_that_is_not_unicode_is_one_problem(tmp_path):
    with pytest.raises(files.FileProblem, match="not valid Unicode"):
        files.write_atomic(tmp_path / "x.py", "name = '\udcff'")
    assert not list(tmp_path.iterdir())


def test_display_name_never_carries_surrogates(tmp_path):
    name = files.display_name(tmp_path / f"{NOT_UTF8}.expr")
    assert name == "caf\ufffd.expr"
    name.encode("utf-8")  # does not raise
    assert files.display_name(tmp_path / NOT_UTF8, whole=True).endswith("caf\ufffd")


def test_a_session_file_with_a_bom_is_accepted(tmp_path):
    path = tmp_path / "s.json"
    workspaces = Workspaces()
    workspaces.current = "network"
    write_session(path, workspaces)
    path.write_bytes(BOM + path.read_bytes())
    assert read_session(path).current == "network"
    assert parse_session("\ufeff" + path.read_bytes()[3:].decode("utf-8")).current == "network"


def test_a_bom_is_fine_in_every_text_file(tmp_path):
    program = tmp_path / "p.expr"
    program.write_bytes(BOM + PROGRAM)
    assert files.read_text(program, "program") == PROGRAM.decode("utf-8")

    config = tmp_path / "c.json"
    config.write_bytes(BOM + json.dumps({"emb_dim": 32}).encode("utf-8"))
    model, _settings = read_config_file(str(config))
    assert model == {"emb_dim": 32}

    lesson = tmp_path / "01-x.toml"
    shutil.copy(sorted(lessons_dir().glob("*.toml"))[0], lesson)
    lesson.write_bytes(BOM + lesson.read_bytes())
    assert load_lesson(lesson).steps

    progress = tmp_path / "progress.json"
    saved = Progress(progress)
    saved.mark("l", "s")
    saved.save()
    progress.write_bytes(BOM + progress.read_bytes())
    loaded = Progress.load(progress)
    assert loaded.problem is None
    assert loaded.done("l", "s")


def test_text_that_is_not_utf8_is_one_line_naming_the_byte(tmp_path):
    path = tmp_path / f"{NOT_UTF8}.expr"
    path.write_bytes(b"x = 1 # caf\xe9\n")
    with pytest.raises(files.FileProblem) as info:
        files.read_text(path, "program")
    assert str(info.value) == "caf\ufffd.expr: not UTF-8 text (byte 11)"
    path.write_bytes(BOM + b"x = 1 # caf\xe9\n")
    with pytest.raises(files.FileProblem, match=r"\(byte 14\)"):  # counted in the file, with its mark
        files.read_text(path, "program")
