"""Light and dark colour themes shared by every view (cards, edges, editor, plots).

A theme is a plain mapping of role -> colour string so that Qt-free code (and tests) can read it; Qt
objects are made from it only where they are drawn.
"""

from __future__ import annotations

LIGHT: dict[str, str] = {
    "name": "light",
    "window": "#f6f7fb",
    "panel": "#ffffff",
    "text": "#1f2430",
    "muted": "#6b7280",
    "canvas": "#f3f5fa",
    "grid": "#e4e8f0",
    "card": "#ffffff",
    "card_border": "#c9d0dc",
    "card_pending": "#eef0f4",
    "leaf": "#3b82f6",      # plain inputs: blue
    "param": "#16a34a",     # trainable leaves: green
    "const": "#94a3b8",     # constants: slate
    "op": "#f59e0b",        # operations: amber
    "output": "#a21caf",    # the loss: magenta
    "module": "#0d9488",    # collapsed module groups: teal
    "value": "#1f2430",
    "grad": "#dc2626",      # gradients are red everywhere
    "edge": "#9aa4b5",
    "edge_forward": "#2563eb",
    "edge_backward": "#e11d48",
    "current": "#facc15",   # halo of the node the player is on
    "selected": "#2563eb",
    "error": "#dc2626",
    "error_bg": "#fef2f2",
    "status_bg": "#eef2ff",
    "keyword": "#7c3aed",
    "function": "#0369a1",
    "number": "#b45309",
    "comment": "#6b7280",
    "name_def": "#15803d",
    "disabled_text": "#a8afbd",   # greyed-out labels and buttons that cannot be used right now
    "disabled_bg": "#eceef3",
    "disabled_border": "#dde1e8",
    "spin_button": "#eef0f4",
}

DARK: dict[str, str] = {
    "name": "dark",
    "window": "#16181d",
    "panel": "#1e2128",
    "text": "#e5e7eb",
    "muted": "#9ca3af",
    "canvas": "#121419",
    "grid": "#23262e",
    "card": "#232731",
    "card_border": "#3a404d",
    "card_pending": "#1b1e25",
    "leaf": "#60a5fa",
    "param": "#4ade80",
    "const": "#94a3b8",
    "op": "#fbbf24",
    "output": "#e879f9",
    "module": "#2dd4bf",
    "value": "#e5e7eb",
    "grad": "#f87171",
    "edge": "#5b6475",
    "edge_forward": "#60a5fa",
    "edge_backward": "#fb7185",
    "current": "#facc15",
    "selected": "#60a5fa",
    "error": "#f87171",
    "error_bg": "#3b1d1d",
    "status_bg": "#22263a",
    "keyword": "#c4b5fd",
    "function": "#7dd3fc",
    "number": "#fdba74",
    "comment": "#9ca3af",
    "name_def": "#86efac",
    "disabled_text": "#5c6370",
    "disabled_bg": "#1a1c22",
    "disabled_border": "#2a2e37",
    "spin_button": "#9ca3af",
}

THEMES = {"light": LIGHT, "dark": DARK}
# Qt's own arrow pictures (dark arrows, compiled into QtWidgets; nothing is read from disk): on the
# spin boxes' buttons, which are pale in both themes ("spin_button") so the arrows always show
ARROWS = ":/qt-project.org/styles/commonstyle/images"

_current = LIGHT


def get_theme(name: str | None = None) -> dict[str, str]:
    """The theme called `name` (unknown names give light), or the current one when `name` is None."""
    if name is None:
        return _current
    return THEMES.get(name, LIGHT)


def set_current(name: str) -> dict[str, str]:
    """Make `name` the theme new views pick up; returns it."""
    global _current
    _current = get_theme(name)
    return _current


def stylesheet(theme: dict[str, str]) -> str:
    """A small application stylesheet for the theme (palette-level colours only).

    The first rule paints every widget's text in the theme colour, which would also paint disabled
    widgets like enabled ones; the `:disabled` rules put the greyed-out look back.
    """
    t = theme
    return f"""
    QMainWindow, QWidget {{ background: {t['window']}; color: {t['text']}; }}
    QMenuBar {{ background: {t['window']}; border: none; }}
    QTabBar {{ qproperty-drawBase: 0; }}
    QAbstractSpinBox, QLineEdit, QComboBox {{ background: {t['panel']}; color: {t['text']};
        border: 1px solid {t['card_border']}; border-radius: 3px; padding: 1px 4px; min-height: 18px; }}
    QAbstractSpinBox:focus, QLineEdit:focus, QComboBox:focus {{ border-color: {t['selected']}; }}
    QAbstractSpinBox {{ padding: 1px 14px 1px 2px; }}
    QAbstractSpinBox::up-button, QAbstractSpinBox::down-button {{ subcontrol-origin: border; width: 13px;
        border-left: 1px solid {t['card_border']}; background: {t['spin_button']}; }}
    QAbstractSpinBox::up-button {{ subcontrol-position: top right; border-top-right-radius: 3px; }}
    QAbstractSpinBox::down-button {{ subcontrol-position: bottom right; border-bottom-right-radius: 3px; }}
    QAbstractSpinBox::up-button:hover, QAbstractSpinBox::down-button:hover {{ background: {t['selected']}; }}
    QAbstractSpinBox::up-arrow {{ image: url({ARROWS}/arrow-up-16.png); width: 9px; height: 9px; }}
    QAbstractSpinBox::down-arrow {{ image: url({ARROWS}/arrow-down-16.png); width: 9px; height: 9px; }}
    QAbstractSpinBox::up-arrow:disabled, QAbstractSpinBox::down-arrow:disabled {{ image: none; }}
    QAbstractSpinBox:disabled, QLineEdit:disabled, QComboBox:disabled {{ background: {t['disabled_bg']};
        border-color: {t['disabled_border']}; }}
    QPlainTextEdit, QTableWidget, QTextBrowser {{
        background: {t['panel']}; color: {t['text']}; border: 1px solid {t['card_border']};
        border-radius: 4px; }}
    QLabel#errorLabel {{ color: {t['error']}; background: {t['error_bg']}; padding: 4px;
        border-radius: 4px; }}
    QLabel#stepStatus {{ background: {t['status_bg']}; padding: 8px; border-radius: 4px;
        font-family: monospace; font-size: 11pt; }}
    QPushButton, QToolButton {{ background: {t['panel']}; border: 1px solid {t['card_border']};
        border-radius: 4px; padding: 4px 10px; }}
    QPushButton:hover, QToolButton:hover {{ border-color: {t['selected']}; }}
    QPushButton:checked, QToolButton:checked {{ border-color: {t['selected']}; }}
    QWidget:disabled {{ color: {t['disabled_text']}; }}
    QPushButton:disabled, QToolButton:disabled {{ color: {t['disabled_text']};
        background: {t['disabled_bg']}; border-color: {t['disabled_border']}; }}
    QToolTip {{ background: {t['panel']}; color: {t['text']}; border: 1px solid {t['card_border']};
        padding: 4px; }}
    QTabBar::tab {{ padding: 6px 14px; background: {t['window']}; color: {t['muted']};
        border: none; border-bottom: 2px solid transparent; }}
    QTabBar::tab:selected {{ color: {t['text']}; border-bottom: 2px solid {t['selected']}; }}
    QTabBar::tab:hover {{ color: {t['text']}; }}
    QTabWidget::pane {{ border: 1px solid {t['card_border']}; border-radius: 4px; }}
    QHeaderView::section {{ background: {t['card_pending']}; color: {t['muted']}; border: none;
        border-right: 1px solid {t['grid']}; border-bottom: 1px solid {t['grid']}; padding: 2px 4px; }}
    QTableCornerButton::section {{ background: {t['card_pending']}; border: none; }}
    QScrollBar:vertical {{ background: {t['window']}; width: 11px; margin: 0; }}
    QScrollBar:horizontal {{ background: {t['window']}; height: 11px; margin: 0; }}
    QScrollBar::handle {{ background: {t['card_border']}; border-radius: 4px; margin: 2px; }}
    QScrollBar::handle:vertical {{ min-height: 24px; }}
    QScrollBar::handle:horizontal {{ min-width: 24px; }}
    QScrollBar::handle:hover {{ background: {t['muted']}; }}
    QScrollBar::add-line, QScrollBar::sub-line {{ width: 0; height: 0; }}
    QScrollBar::add-page, QScrollBar::sub-page {{ background: none; }}
    QMenuBar::item:selected, QMenu::item:selected {{ background: {t['selected']}; color: #ffffff; }}
    QMenu {{ border: 1px solid {t['card_border']}; }}
    QCheckBox::indicator {{ width: 13px; height: 13px; border: 1px solid {t['muted']}; border-radius: 3px;
        background: {t['panel']}; }}
    QCheckBox::indicator:checked {{ background: {t['selected']}; border-color: {t['selected']}; }}
    QCheckBox::indicator:disabled {{ border-color: {t['disabled_border']}; background: {t['disabled_bg']}; }}
    QMenu::item:disabled {{ color: {t['disabled_text']}; }}
    QGroupBox {{ border: 1px solid {t['card_border']}; border-radius: 4px; margin-top: 10px;
        padding-top: 6px; }}
    QGroupBox::title {{ subcontrol-origin: margin; left: 8px; color: {t['muted']}; }}
    """


def apply_theme(app, name: str) -> dict[str, str]:
    """Apply the named theme to a QApplication (stylesheet) and make it current."""
    theme = set_current(name)
    app.setStyleSheet(stylesheet(theme))
    return theme


def contrast_ratio(first: str, second: str) -> float:
    """WCAG contrast ratio of two "#rrggbb" colours: 1 (same) to 21 (black on white); text wants >= 4.5."""
    high, low = sorted((_luminance(first), _luminance(second)), reverse=True)
    return (high + 0.05) / (low + 0.05)


MIN_PLOT_CONTRAST = 3.0  # a curve's colour against its plot's background (WCAG's figure for graphics)
PLOT_CONTRAST_AIM = 3.6  # what a run colour is lifted to when it falls short (a margin over the minimum)


def plot_colour(colour: str, theme: dict[str, str], background: str | None = None) -> str:
    """`colour` ("#rrggbb", a run's own) as drawn on a plot of `theme`: the same hue, mixed toward white
    on a dark background (toward black on a light one) until its contrast ratio against the plot's
    background (default: the theme's panel) is at least PLOT_CONTRAST_AIM (so always over
    MIN_PLOT_CONTRAST). Colours that already reach the aim are kept as they are."""
    back = background or theme["panel"]
    if contrast_ratio(colour, back) >= PLOT_CONTRAST_AIM:
        return colour.lower()
    rgb = [int(colour.lstrip("#")[i:i + 2], 16) for i in (0, 2, 4)]
    towards = 255 if _luminance(back) < 0.5 else 0
    mixed = colour
    for step in range(1, 21):
        k = step / 20
        mixed = "#" + "".join(f"{round(c + (towards - c) * k):02x}" for c in rgb)
        if contrast_ratio(mixed, back) >= PLOT_CONTRAST_AIM:
            break
    return mixed


def _luminance(colour: str) -> float:
    channels = [int(colour.lstrip("#")[i:i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def style_plot(widget, plot, theme: dict[str, str], title: str | None = None,
               title_size: str = "9pt") -> None:
    """Colour one pyqtgraph plot for `theme`: background, axes (ticks and labels), title and legend.

    pyqtgraph takes none of this from the Qt palette or stylesheet, so every plot of the app goes through
    here when it is made and when the theme changes. `widget` is the PlotWidget (or None when the plot
    sits in a GraphicsLayoutWidget whose background the caller sets); `plot` is its PlotItem.
    """
    if widget is not None:
        widget.setBackground(theme["panel"])
    for side in ("left", "bottom", "right", "top"):
        axis = plot.getAxis(side)
        axis.setPen(theme["muted"])
        axis.setTextPen(theme["muted"])
    if title is not None:
        plot.setTitle(title, color=theme["muted"], size=title_size)
    if plot.legend is not None:
        recolour_legend(plot.legend, theme["text"])


def recolour_legend(legend, colour: str) -> None:
    """Set a pyqtgraph legend's label colour, for the labels already there too.

    LegendItem.setLabelTextColor only records the colour for labels added later: a label drawn before a
    theme switch kept its old colour (dark text on the dark background), so each label is re-set here.
    """
    legend.setLabelTextColor(colour)
    for _sample, label in legend.items:
        label.setText(label.text, color=colour)
