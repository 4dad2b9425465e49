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


# The objectNames of labels that carry a look of their own (a message box, the player's status line); the
# theme gives each a widget-level style sheet (`style_labels`), never an application-wide one.
LABEL_STYLES = {
    "errorLabel": "QLabel {{ color: {error}; background: {error_bg}; padding: 4px; border-radius: 4px; }}",
    "stepStatus": ("QLabel {{ background: {status_bg}; padding: 4px 8px; border-radius: 4px; "
                   "font-family: monospace; font-size: 10pt; }}"),
}
# input widgets whose frame Fusion draws in its outline colour (the palette's window, darkened by 140 %):
# they get a palette of their own whose window colour makes that outline the theme's card border
FRAMED_INPUTS = ("QAbstractSpinBox", "QLineEdit", "QComboBox", "QCheckBox", "QRadioButton")


# QApplication arguments that pick Fusion, the style that draws every standard widget from the palette
STYLE_ARGS = ["-style", "fusion"]


def palette(theme: dict[str, str], inputs: bool = False):
    """The theme as a QPalette for Qt's Fusion style (which draws every standard widget from it).

    A theme switch is then one `QApplication.setPalette` (a repaint) instead of an application style
    sheet, which Qt re-applies to every widget (re-polish and re-layout: about a second for the main
    window's ~2000 widgets). The disabled group keeps the greyed-out look. `inputs`: the palette of the
    framed input widgets (FRAMED_INPUTS), whose outline (window colour darkened) is the card border.
    """
    from PySide6.QtGui import QColor, QPalette

    t = theme
    pal = QPalette(QColor(t["panel"]), QColor(t["window"]))
    roles = {
        QPalette.Window: t["window"], QPalette.WindowText: t["text"], QPalette.Base: t["panel"],
        QPalette.AlternateBase: t["card_pending"], QPalette.Text: t["text"], QPalette.Button: t["panel"],
        QPalette.ButtonText: t["text"], QPalette.BrightText: "#ffffff", QPalette.Highlight: t["selected"],
        QPalette.HighlightedText: "#ffffff", QPalette.ToolTipBase: t["panel"],
        QPalette.ToolTipText: t["text"], QPalette.PlaceholderText: t["muted"], QPalette.Link: t["selected"],
        QPalette.LinkVisited: t["keyword"],
        QPalette.Light: t["panel"], QPalette.Midlight: t["grid"], QPalette.Mid: t["card_border"],
        QPalette.Dark: t["card_border"], QPalette.Shadow: t["muted"],
    }
    for role, colour in roles.items():
        pal.setColor(role, QColor(colour))
    for role in (QPalette.WindowText, QPalette.Text, QPalette.ButtonText):
        pal.setColor(QPalette.Disabled, role, QColor(t["disabled_text"]))
    for role in (QPalette.Base, QPalette.Button):
        pal.setColor(QPalette.Disabled, role, QColor(t["disabled_bg"]))
    if inputs:
        border = QColor(t["card_border"])
        hue, sat, value, alpha = border.getHsv()
        outline = QColor.fromHsv(hue, sat, min(255, round(value * 1.4)), alpha)
        pal.setColor(QPalette.Window, outline)
        pal.setColor(QPalette.Disabled, QPalette.Window, QColor(t["disabled_border"]).lighter(140))
    return pal


def label_style(object_name: str, theme: dict[str, str]) -> str:
    """The widget-level style sheet of a label called `object_name` (LABEL_STYLES), "" for others."""
    template = LABEL_STYLES.get(object_name)
    return template.format(**theme) if template else ""


def style_labels(root, theme: dict[str, str]) -> None:
    """Give the named labels under `root` (LABEL_STYLES) their look for `theme` (a few labels each)."""
    from PySide6.QtWidgets import QLabel

    for name in LABEL_STYLES:
        for label in root.findChildren(QLabel, name):
            label.setStyleSheet(label_style(name, theme))


def apply_theme(app, name: str) -> dict[str, str]:
    """Apply the named theme to a QApplication (made with STYLE_ARGS) and make it current.

    No application style sheet: the whole switch is a palette change, which repaints the widgets without
    re-polishing them (the freeze of issue 20 item 6). Labels with a look of their own get widget-level
    sheets through `style_labels`. The same steps as `theme_steps`, all at once.
    """
    for step in theme_steps(app, name):
        step()
    return get_theme(name)


def theme_steps(app, name: str) -> list:
    """`apply_theme` in steps that a staged switch runs one per event-loop turn: the application palette
    (and the theme made current), then the framed inputs' palette, one class of FRAMED_INPUTS a step
    (each is a pass of Qt over every widget of the app).

    The first call also makes widget-level sheets take part in palette propagation
    (Qt.AA_UseStyleSheetPropagationInWidgetStyles) and re-applies the sheets polished before that: from
    then on a sheet fixes only the palette roles it names (a label's own colour), the rest follows the
    application palette, so a switch no longer visits every widget of the app to re-apply its sheet
    (~2,400 widgets wrapped for Python: 25-80 ms under load).
    """

    def application() -> None:
        theme = set_current(name)
        # the app is made with Fusion (STYLE_ARGS; Linux's default too): asking app.style() here would
        # cost a quarter of a second before the first paint (PySide builds QStyle's enums on first use)
        if app.styleSheet():
            app.setStyleSheet("")
        use_sheet_propagation(app)
        app.setPalette(palette(theme))

    def inputs(cls: str) -> None:
        app.setPalette(palette(get_theme(name), inputs=True), cls)

    return [application, *(lambda cls=cls: inputs(cls) for cls in FRAMED_INPUTS)]


def apply_palette(app, name: str) -> dict[str, str]:
    """`apply_theme` for the window's first frame: the palettes alone, made without PySide's `Qt`
    namespace (common/placeholder.py); `use_sheet_propagation` follows after the first paint."""
    theme = set_current(name)
    app.setPalette(palette(theme))
    for cls in FRAMED_INPUTS:
        app.setPalette(palette(theme, inputs=True), cls)
    return theme


def use_sheet_propagation(app) -> None:
    """Make widget-level style sheets take part in palette propagation (once; see `theme_steps`)."""
    from PySide6.QtCore import Qt

    if not app.testAttribute(Qt.AA_UseStyleSheetPropagationInWidgetStyles):
        # sheets polished before hold every role of the palette they were given: taken off while
        # the attribute is still off (Qt gives back each widget's own palette), set again after it
        sheets = [(widget, widget.styleSheet()) for widget in app.allWidgets() if widget.styleSheet()]
        for widget, _sheet in sheets:
            widget.setStyleSheet("")
        app.setAttribute(Qt.AA_UseStyleSheetPropagationInWidgetStyles, True)
        for widget, sheet in sheets:
            widget.setStyleSheet(sheet)


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


class DeferredRecolour:
    """A theme switch recolours the visible workspace at once and each hidden one in a later event-loop
    turn, one per turn: no single turn holds the window for every panel's plots and graphs.

    `recolour(key)` applies the current theme to the panel of `key`; `context` is the window (the QWidget
    whose life bounds the queued turns). `flush(key)` recolours a pending panel now (it is about to be
    shown or handed to a caller).

    A staged switch (`switch(..., staged=True)`, the View menu's path) spreads the visible part too. The
    window's updates are off from the first step to the last, so it keeps showing the old theme whole
    (never half recoloured); the steps (the application palette, each input class's palette, the visible
    panel, the others of `after`) run one per turn; then each visible graphics view (graphs, plots) is
    drawn once into a throwaway image, one per turn, so that what a theme change invalidates (plot axes'
    pictures, graph cards' faces) is made again before the window's one repaint in the new theme, when
    its updates come back on. The hidden workspaces follow, one per turn. Each turn holds the GUI thread
    for one step (issue 20 item 6: no turn over 100 ms).
    """

    def __init__(self, context, recolour) -> None:
        self._context = context
        self._recolour = recolour
        self.pending: list[str] = []
        self.later = 0  # panels recoloured in a later turn than their switch (a test counts them)
        self.steps: list = []  # a staged switch's steps still to run, one per turn
        self.step_turns = 0  # steps run in a later turn than their switch (a test counts them)
        self._frozen: list = []  # the windows whose updates a staged switch turned off
        self._queued = False  # a turn for the hidden workspaces is scheduled
        self._step_queued = False  # a turn for the next step is scheduled

    def switch(self, keys, visible: str, before=(), after=(), staged: bool = False) -> None:
        """Run `before` (the application's palette: `theme_steps`), recolour `visible`, run `after`
        (views outside the workspaces) and queue the other `keys`, one per turn. All in this turn, or
        with `staged` one step per turn behind windows that keep their old look until the last."""
        self.finish()  # a staged switch still under way completes first (its steps, in order)
        keys = list(keys)
        steps = [*before, lambda: self._recolour_now(keys, visible), *after]
        if not staged:
            for step in steps:
                step()
            self._queue_hidden()
            return
        self._freeze()
        self.steps = [*steps, self._queue_warming]
        self._queue_step()  # first: a step that raises leaves the next ones their turns
        self._run_step()

    def finish(self) -> None:
        """Run a staged switch's remaining steps now and let its windows repaint."""
        try:
            while self.steps:
                self._run_step()
        finally:
            if not self.steps:
                self._thaw()

    def flush(self, key: str) -> None:
        """Recolour `key` now if it still waits for its turn (a staged switch under way completes)."""
        self.finish()
        if key in self.pending:
            self.pending.remove(key)
            self._recolour(key)

    def _recolour_now(self, keys: list[str], visible: str) -> None:
        self.pending = [key for key in keys if key != visible]
        if visible in keys:
            self._recolour(visible)

    def _queue_hidden(self) -> None:
        if self.pending and not self._queued:
            self._queued = True
            self._schedule(self._next)

    def _run_step(self) -> None:
        self.steps.pop(0)()

    def _queue_step(self) -> None:
        if not self._step_queued:
            self._step_queued = True
            self._schedule(self._next_step)

    def _next_step(self) -> None:
        self._step_queued = False
        try:
            if self.steps:
                self.step_turns += 1
                self._run_step()
        finally:  # a step that raised does not leave the window without updates
            if self.steps:
                self._queue_step()
            else:
                self._thaw()

    def _queue_warming(self) -> None:
        from PySide6.QtWidgets import QGraphicsView

        for window in list(self._frozen):
            for view in window.findChildren(QGraphicsView):
                if view.isVisible():
                    height = view.height()
                    self.steps += [lambda view=view, top=top: self._warm(view, top)
                                   for top in range(0, height, WARM_STRIP_PX)]

    def _warm(self, view, top: int) -> None:
        """Draw a strip of `view` (WARM_STRIP_PX from `top`) into a throwaway image. Qt draws nothing of
        a widget whose updates are off, so its window's are on for the call; nothing reaches the screen
        before they are off again."""
        from PySide6.QtCore import QPoint, QRect
        from PySide6.QtGui import QImage, QRegion
        from PySide6.QtWidgets import QWidget

        try:
            window = view.window()
            if window not in self._frozen or not view.isVisible() or view.width() == 0:
                return
            image = QImage(view.width(), WARM_STRIP_PX, QImage.Format_ARGB32_Premultiplied)
            strip = QRegion(QRect(0, top, view.width(), WARM_STRIP_PX))
            window.setUpdatesEnabled(True)
            try:
                QWidget.render(view, image, QPoint(0, 0), strip)
            finally:
                window.setUpdatesEnabled(False)
        except RuntimeError:  # the view went meanwhile
            pass

    def _freeze(self) -> None:
        """Turn off updates of the window and of its other visible windows (a floating dock), noting
        which were on."""
        from PySide6.QtWidgets import QApplication, QWidget

        windows = [self._context] if isinstance(self._context, QWidget) else []
        windows += [w for w in QApplication.topLevelWidgets()
                    if w is not self._context and w.isVisible() and _owned_by(w, self._context)]
        self._frozen = [w for w in windows if w.updatesEnabled()]
        for window in self._frozen:
            window.setUpdatesEnabled(False)

    def _thaw(self) -> None:
        from PySide6.QtCore import QCoreApplication, QEvent

        frozen, self._frozen = self._frozen, []
        for window in frozen:
            try:
                window.setUpdatesEnabled(True)  # one update of the whole window...
                # ... painted in the next turn: the warm-up's update (made while the window was frozen
                # again) left the window marked dirty, and Qt sends no new request for a dirty widget
                QCoreApplication.postEvent(window, QEvent(QEvent.Type.UpdateRequest))
            except RuntimeError:  # closed and deleted meanwhile
                pass
        self._queue_hidden()

    def _next(self) -> None:
        self._queued = False
        if self.steps:  # a staged switch began meanwhile: the hidden ones wait for its end
            return
        if self.pending:
            self._recolour(self.pending.pop(0))
            self.later += 1
        self._queue_hidden()

    def _schedule(self, method) -> None:
        from PySide6.QtCore import QTimer

        QTimer.singleShot(1, self._context, method)  # a timer: see slices.TURN_MS


WARM_STRIP_PX = 200  # a staged switch draws the visible graphics views ahead in strips this high, one a turn


def _owned_by(widget, owner) -> bool:
    """Whether `owner` is among the QObject parents of `widget`."""
    parent = widget.parent()
    while parent is not None:
        if parent is owner:
            return True
        parent = parent.parent()
    return False
