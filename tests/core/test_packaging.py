"""The wheel carries the package data: the example programs (and the lessons) ship with an installed app."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_wheel_contains_the_examples(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path),
         str(ROOT)],
        capture_output=True, text=True, timeout=240,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    wheel = next(tmp_path.glob("autograd_explorer-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    examples = {p.name for p in (ROOT / "explorer" / "assets" / "examples").glob("*.expr")}
    assert examples, "no examples in the source tree"
    for name in examples:
        assert f"explorer/assets/examples/{name}" in names, name
    lessons = {p.name for p in (ROOT / "explorer" / "assets" / "lessons").glob("*.toml")}
    assert len(lessons) >= 6, "fewer than six lessons in the source tree"
    for name in lessons:
        assert f"explorer/assets/lessons/{name}" in names, name
    # Only our package goes in: no tests, no benches.
    assert not any(n.startswith(("tests/", "bench/")) for n in names)
    print(f"{wheel.name}: {len(names)} files")


def test_examples_found_through_importlib_resources():
    from explorer.core.lang.examples import examples_dir, list_examples

    assert examples_dir().is_dir()
    assert len(list_examples()) >= 6


def test_lessons_found_through_importlib_resources():
    from explorer.core.lessons.runner import lessons_dir

    assert lessons_dir().is_dir()
    assert len(list(lessons_dir().glob("*.toml"))) >= 6
