"""Every test keeps the app's per-user data (run folders) in a temporary folder of its own, and torch runs
one intra-op thread in every test process and in the processes the tests start."""

import compileall
import os
from pathlib import Path

import pytest

# `make test` runs two workers on two cores. With torch's default (a thread per core) each worker's
# OpenMP threads wait at every kernel's join for a core the other worker holds: a tiny model's step took
# 8x the CPU time of one thread (28 s against 3.6 s for one export test). Set before any test module
# imports torch; inherited by subprocesses. Tests about threads set their count themselves.
os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_configure(config):
    """Compile the app's modules to bytecode once, before the workers start.

    Where PYTHONDONTWRITEBYTECODE is set (it was on the machines this suite was timed on) no interpreter
    caches what it compiles, so each of the dozens of fresh interpreters the suite starts (commands,
    training processes, torchrun ranks) compiled the app's modules again: ~0.45 s of a grad command's
    4.3 s of CPU. Reading cached bytecode is still allowed; this writes it
    (into the ignored __pycache__ folders) and is quick when it is up to date."""
    if hasattr(config, "workerinput"):  # an xdist worker: the controller compiled before it started
        return
    root = Path(__file__).resolve().parents[1]
    compileall.compile_dir(root / "explorer", quiet=2)  # silent: a read-only checkout just reads source
    compileall.compile_dir(root / "tests", maxlevels=0, quiet=2)  # the helpers beside the test folders


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items):
    """Files holding tests marked `slow` first (most slow tests first), then the others, most tests first;
    the tests of a file keep their order.

    `make test` hands whole files to whichever of its two workers has run out (--dist loadfile, with xdist's
    own reordering by test count turned off in pyproject.toml). Ordered by count alone, the files of a few
    tests that each start processes or train (a minute on one worker) came last: one worker ran the last
    of them alone while the other had nothing left. Begun first, they run beside the many quick files."""
    by_file: dict[str, list] = {}
    for item in items:
        by_file.setdefault(item.nodeid.split("::", 1)[0], []).append(item)

    def weight(name: str) -> tuple[int, int]:
        tests = by_file[name]
        return -sum(1 for test in tests if test.get_closest_marker("slow")), -len(tests)

    items[:] = [item for name in sorted(by_file, key=weight) for item in by_file[name]]


@pytest.fixture(autouse=True)
def _private_data_folder(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("AUTOGRAD_EXPLORER_DATA", str(tmp_path_factory.mktemp("user-data")))
