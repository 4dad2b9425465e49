"""Command-line entry point shared by `python main.py`, `python -m explorer` and `autograd-explorer`.

With a headless command as the first argument (grad, graph, params, train, export) it runs that command
without importing Qt; with anything else it starts the desktop app and hands it the arguments.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# command name -> module in explorer.commands; each module defines
#   add_arguments(parser: argparse.ArgumentParser) -> None
#   run(args: argparse.Namespace) -> int            (exit status; 2 for bad input)
#   HELP: str                                       (one line for `--help`)
COMMANDS = {
    "grad": "explorer.commands.grad",
    "graph": "explorer.commands.graph",
    "params": "explorer.commands.params",
    "train": "explorer.commands.train",
    "export": "explorer.commands.export",
}


class UserInputError(Exception):
    """Bad input from the user: printed as one line on stderr, exit status 2, no traceback."""


def build_parser() -> argparse.ArgumentParser:
    """The parser for the headless commands (the app's own options live in explorer.ui.app)."""
    parser = argparse.ArgumentParser(
        prog="python -m explorer",
        description="Autograd Explorer. Without a command, starts the desktop app.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        cmd = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)
    return parser


def _print_help() -> None:
    """The app's options, then the headless commands (explorer.ui.app imports no Qt at module level)."""
    from explorer.ui.app import build_parser as app_parser

    app_parser().print_help()
    print()
    build_parser().print_help()


def main(argv: list[str] | None = None) -> int:
    """Dispatch to a headless command or start the app; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv in (["-h"], ["--help"]):
        _print_help()
        return 0
    if argv and argv[0] in COMMANDS:
        args = build_parser().parse_args(argv)
        try:
            return int(args._run(args) or 0)
        except UserInputError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        except BrokenPipeError:
            # The reader went away (`... | head`): not an error of ours. Point stdout at devnull so the
            # interpreter's final flush does not raise again.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
    from explorer.ui.app import main as app_main

    return app_main(argv)


def run_as_program() -> None:
    """`python -m explorer` and `python main.py`: run `main` and end the process with its status.

    A background job still inside a torch call when the app quits (its thread was left behind after the
    workers' deadline) would make the interpreter's teardown abort ("terminate called without an active
    exception", status -6) after a clean run: then the process ends at once, with the app's own status.
    """
    code = main()
    worker = sys.modules.get("explorer.ui.common.worker")
    if worker is not None and worker.left_behind():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    raise SystemExit(code)
