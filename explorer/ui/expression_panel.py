"""Launcher: `python -m explorer.ui.expression_panel` opens the expression workspace alone."""

from explorer.ui.expression.panel import ExpressionPanel, main

__all__ = ["ExpressionPanel", "main"]

if __name__ == "__main__":
    raise SystemExit(main())
