"""Launch Autograd Explorer: `python main.py` (see `python main.py --help`)."""

from explorer.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
