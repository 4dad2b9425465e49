"""The wheel carries the package data: the example programs (and the lessons) ship with an installed app."""

import os
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
    examples = {p.name for p in (ROOT / "assets" / "examples").glob("*.expr")}
    assert examples, "no examples in the source tree"
    for name in examples:
        assert f"explorer/assets/examples/{name}" in names, name
    lessons = {p.name for p in (ROOT / "assets" / "lessons").glob("*.toml")}
    assert len(lessons) >= 6, "fewer than six lessons in the source tree"
    for name in lessons:
        assert f"explorer/assets/lessons/{name}" in names, name
    # Only our package goes in: no tests, no benches, no top-level assets/ beside the package.
    assert not any(n.startswith(("tests/", "bench/", "assets/")) for n in names)
    print(f"{wheel.name}: {len(names)} files")
    # Installed (the wheel unpacked, no checkout around it), the app finds its data inside the package.
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    probe = ("from explorer.core.assets import assets_dir; "
             "from explorer.core.lessons.runner import lessons_dir; "
             "print(assets_dir()); print(len(list(lessons_dir().glob('*.toml'))))")
    found = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                           cwd=site, env={**os.environ, "PYTHONPATH": str(site)})
    assert found.returncode == 0, found.stderr[-2000:]
    where, count = found.stdout.split()
    assert Path(where) == site / "explorer" / "assets"
    assert int(count) == len(lessons)


def test_examples_found_through_importlib_resources():
    from explorer.core.lang.examples import examples_dir, list_examples

    assert examples_dir().is_dir()
    assert len(list_examples()) >= 6


def test_lessons_found_through_importlib_resources():
    from explorer.core.lessons.runner import lessons_dir

    assert lessons_dir().is_dir()
    assert len(list(lessons_dir().glob("*.toml"))) >= 6
