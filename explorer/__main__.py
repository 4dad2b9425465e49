"""`python -m explorer [COMMAND ...]`: the app, or a headless command."""

from explorer.cli import run_as_program

run_as_program()
