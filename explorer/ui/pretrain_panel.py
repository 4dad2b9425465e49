"""Launcher: `python -m explorer.ui.pretrain_panel` opens the pretrain workspace alone."""

from explorer.ui.pretrain.panel import PretrainPanel, main

__all__ = ["PretrainPanel", "main"]

if __name__ == "__main__":
    raise SystemExit(main())
