"""The headless commands run in the test's own process (Qt-free): `python -m explorer ARGV` as
explorer.cli dispatches it, without a fresh interpreter's torch import (~4 s of CPU each).

The contract tests keep one subprocess per kind of call (a command's result, a user error, the console
script, main.py); the rest of their calls go through here.
"""

from __future__ import annotations

import contextlib
import io
import subprocess


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
