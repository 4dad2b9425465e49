"""Every test keeps the app's per-user data (run folders) in a temporary folder of its own, and torch runs
one intra-op thread in every test process and in the processes the tests start."""

import os

import pytest

# `make test` runs two workers on two cores. With torch's default (a thread per core) each worker's
# OpenMP threads wait at every kernel's join for a core the other worker holds: a tiny model's step took
# 8x the CPU time of one thread (28 s against 3.6 s for one export test). Set before any test module
# imports torch; inherited by subprocesses. Tests about threads set their count themselves.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def _private_data_folder(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("AUTOGRAD_EXPLORER_DATA", str(tmp_path_factory.mktemp("user-data")))
