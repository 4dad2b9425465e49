"""Launch Autograd Explorer: `python main.py` (see `python main.py --help`)."""

from explorer.cli import run_as_program

if __name__ == "__main__":
    run_as_program()
