"""Launcher: `python -m explorer.ui.network_panel` opens the network workspace alone."""

from explorer.ui.network.panel import NetworkPanel, main

__all__ = ["NetworkPanel", "main"]

if __name__ == "__main__":
    raise SystemExit(main())
