"""The headless commands run in the test's own process (Qt-free): `python -m explorer ARGV` as
explorer.cli dispatches it, without a fresh interpreter's torch import (~4 s of CPU each).

The contract tests keep one subprocess per kind of call (a command's result, a user error, the console
script, main.py); the rest of their calls go through here, or, where a call must not run in the test's
process (it draws with Qt, or opens the app's window), several of them share one fresh interpreter
(`run_in_one_process`).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_in_process(*argv: str) -> subprocess.CompletedProcess:
    """`python -m explorer ARGV` in this process: exit status and what it printed on stdout and stderr
    (argparse's exits, `--help` included, become the status)."""
    from explorer.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    argv_shown = ["python", "-m", "explorer", *argv]
    return subprocess.CompletedProcess(argv_shown, code, out.getvalue(), err.getvalue())


# Run in the fresh interpreter: each call's file descriptors 1 and 2 go to files of their own, so what Qt
# or torch write there from C is caught as well as Python's prints; the results go back as one JSON line
# on the original stdout.
_BATCH = """
import json, os, sys, tempfile
from explorer.cli import main
calls = json.loads(sys.stdin.read())
results = []
saved = os.dup(1), os.dup(2)
for argv in calls:
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        sys.stdout.flush(); sys.stderr.flush()
        os.dup2(out.fileno(), 1); os.dup2(err.fileno(), 2)
        try:
            code = main(list(argv))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
        finally:
            sys.stdout.flush(); sys.stderr.flush()
            os.dup2(saved[0], 1); os.dup2(saved[1], 2)
        texts = []
        for f in (out, err):
            f.seek(0)
            texts.append(f.read().decode("utf-8", "replace"))
    results.append([code, *texts])
os.write(saved[0], (json.dumps(results) + "\\n").encode())
sys.stdout.flush()
os._exit(0)
"""


def run_in_one_process(*calls: list[str], env: dict | None = None,
                       timeout: float = 300) -> list[subprocess.CompletedProcess]:
    """Each of `calls` as `python -m explorer ARGV` (or `python main.py ARGV`: the same dispatch) would
    run it, one after the other in one fresh interpreter: one torch (and Qt) import for all of them.

    For variants of a contract that one real process per kind of call already checks; a call here sees
    what the calls before it left in the interpreter (a QApplication, imported modules)."""
    done = subprocess.run([sys.executable, "-c", _BATCH], input=json.dumps([list(c) for c in calls]),
                          capture_output=True, text=True, cwd=ROOT, timeout=timeout,
                          env={**os.environ, **(env or {})})
    assert done.returncode == 0 and done.stdout.strip(), (done.returncode, done.stderr[-3000:])
    results = json.loads(done.stdout.strip().splitlines()[-1])
    return [subprocess.CompletedProcess(["python", "-m", "explorer", *argv], code, out, err)
            for argv, (code, out, err) in zip(calls, results, strict=True)]
