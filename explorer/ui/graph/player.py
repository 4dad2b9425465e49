"""The player: a timeline of forward events then backward events, stepped or played.

It knows only a number of steps; the panel maps a step to what the graph shows. Step 0 is "nothing
computed yet", step N (the length) is "forward and backward done".
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractSlider,
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLayout,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSlider,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

TIMELINE_MIN_W = 120  # the step slider never gets narrower than this (it moves to a row of its own)
PLAYER_KEYS = (Qt.Key_Space, Qt.Key_Right, Qt.Key_Left, Qt.Key_Home, Qt.Key_End)

_COMBO_KEYS = {Qt.Key_Space, Qt.Key_Up, Qt.Key_Down, Qt.Key_Home, Qt.Key_End, Qt.Key_PageUp, Qt.Key_PageDown}
_SLIDER_KEYS = {Qt.Key_Left, Qt.Key_Right, Qt.Key_Up, Qt.Key_Down, Qt.Key_Home, Qt.Key_End,
                Qt.Key_PageUp, Qt.Key_PageDown}
_COMMAND_MODIFIERS = Qt.ControlModifier | Qt.AltModifier | Qt.MetaModifier


def input_owns_key(widget: QWidget | None, key: int, modifiers=Qt.NoModifier, text: str = "") -> bool:
    """True when `widget` (the one with the keyboard focus) uses this key press itself.

    Text and number fields own every key without Ctrl/Alt/Meta (typing a space is typing, not
    "play"); a combo box owns Space (open), Up/Down/Home/End (choose) and letters (jump to an item);
    a focused slider owns its arrows; a focused check box or button owns Space; an open popup (a
    combo's list) owns everything. Such keys must reach the widget, never a player shortcut.
    """
    if widget is None or (Qt.KeyboardModifier(modifiers) & _COMMAND_MODIFIERS) != Qt.NoModifier:
        return False
    printable = bool(text) and text.isprintable()
    if widget.window().windowType() == Qt.Popup:
        return True
    if isinstance(widget, QLineEdit | QAbstractSpinBox):
        return not (isinstance(widget, QLineEdit) and widget.isReadOnly())
    if isinstance(widget, QPlainTextEdit | QTextEdit):
        return not widget.isReadOnly()
    if isinstance(widget, QComboBox):
        return widget.isEditable() or key in _COMBO_KEYS or printable
    if isinstance(widget, QAbstractSlider):
        return key in _SLIDER_KEYS
    if isinstance(widget, QAbstractButton):
        return key == Qt.Key_Space
    return False


def buttons_keep_player_keys(root: QWidget) -> None:
    """Push buttons under `root` take the keyboard focus from Tab only, never from a click.

    Otherwise clicking "Gradient descent step" and then pressing Space to play would press the
    button again (a focused button owns Space).
    """
    for button in root.findChildren(QPushButton):
        if button.focusPolicy() == Qt.StrongFocus:
            button.setFocusPolicy(Qt.TabFocus)


class _InputKeyGuard(QObject):
    """Event filter on the focus widget: a key the focused input owns never triggers a shortcut.

    Qt asks the focus widget first with a ShortcutOverride event; accepting it delivers the key to the
    widget as an ordinary key press (which may still bubble up to a panel that handles player keys).
    The filter follows the keyboard focus (QApplication.focusChanged) instead of watching every event of
    the application: a Python filter on the application runs for each of the thousands of events a theme
    switch or a repaint sends, and that cost is the GUI thread's.
    """

    def follow_focus(self, old, new) -> None:
        if old is not None:
            old.removeEventFilter(self)
        if new is not None:
            new.installEventFilter(self)

    def eventFilter(self, obj, event) -> bool:  # noqa: N802
        if event.type() == QEvent.ShortcutOverride and isinstance(obj, QWidget) and input_owns_key(
                obj, event.key(), event.modifiers(), event.text()):
            event.accept()
            return True
        return False


def install_input_key_guard() -> None:
    """Install the guard on the running QApplication once (every Player does this)."""
    app = QApplication.instance()
    if app is None or app.property("explorerInputKeyGuard"):
        return
    guard = _InputKeyGuard(app)
    app.focusChanged.connect(guard.follow_focus)
    guard.follow_focus(None, app.focusWidget())
    app.setProperty("explorerInputKeyGuard", True)


class Player(QWidget):
    """Reset / step back / step / play-pause / speed controls over a timeline of `length` steps."""

    sig_step_changed = Signal(int)
    """The current step changed (0 .. length)."""

    sig_playing_changed = Signal(bool)
    """Playback started (True) or stopped (False)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        install_input_key_guard()
        self._length = 0
        self._step = 0
        self._timer = QTimer(self)
        self._timer.timeout.connect(self._tick)
        self.reset_button = self._button("⇤ Reset", "resetButton",
                                         "Reset to step 0: nothing computed yet (Home)")
        self.back_button = self._button("◀ Back", "stepBackButton", "Step back one event (Left)")
        self.play_button = self._button("▶ Play", "playButton",
                                        "Play the forward pass, then the backward pass, "
                                        "event by event (Space)")
        self.step_button = self._button("Step ▶", "stepButton", "Step forward one event (Right)")
        self.reset_button.clicked.connect(self.reset)
        self.back_button.clicked.connect(self.step_back)
        self.step_button.clicked.connect(self.step_forward)
        self.play_button.clicked.connect(self.toggle_play)
        self.timeline = QSlider(Qt.Horizontal)
        self.timeline.setObjectName("timelineSlider")
        self.timeline.setFocusPolicy(Qt.NoFocus)
        self.timeline.setToolTip("Timeline: forward events first, then backward events in the order "
                                 "PyTorch's autograd engine ran them. Drag to jump.")
        self.timeline.valueChanged.connect(self.set_step)
        self.position = QLabel("0 / 0")
        self.position.setObjectName("stepPosition")
        self.position.setMinimumWidth(70)
        self.position.setToolTip("Events shown so far / all events: the forward pass first, then the "
                                 "backward pass")
        self.speed = QSlider(Qt.Horizontal)
        self.speed.setObjectName("speedSlider")
        self.speed.setRange(1, 30)
        self.speed.setValue(3)
        self.speed.setFixedWidth(90)
        self.speed.setFocusPolicy(Qt.NoFocus)
        self.speed.setToolTip("Playback speed: events per second")
        self.speed.valueChanged.connect(self._apply_speed)
        speed_label = QLabel("speed")
        speed_label.setToolTip(self.speed.toolTip())
        # One row when there is room; in a narrow column the timeline takes a row of its own, so it never
        # shrinks to a square that looks like an unticked check box (TIMELINE_MIN_W).
        self.timeline.setMinimumWidth(TIMELINE_MIN_W)
        self._rows = QVBoxLayout(self)
        self._rows.setContentsMargins(0, 0, 0, 0)
        self._rows.setSpacing(2)
        self._rows.setSizeConstraint(QLayout.SetNoConstraint)  # minimumSizeHint below decides, alone too
        self._buttons_row = QHBoxLayout()
        for w in (self.reset_button, self.back_button, self.play_button, self.step_button):
            self._buttons_row.addWidget(w)
        self._buttons_row.addWidget(self.timeline, 1)
        self._buttons_row.addWidget(self.position)
        self._buttons_row.addWidget(speed_label)
        self._buttons_row.addWidget(self.speed)
        self._timeline_row = QHBoxLayout()
        self._rows.addLayout(self._buttons_row)
        self._rows.addLayout(self._timeline_row)
        self._speed_label = speed_label
        self._two_rows = False
        self._apply_speed()
        self._sync()

    # -- public API ------------------------------------------------------------------------

    def is_two_rows(self) -> bool:
        """Whether the timeline sits on a row of its own (a narrow player)."""
        return self._two_rows

    def minimumSizeHint(self):  # noqa: N802 (Qt's name)
        """Narrow enough for the buttons and the speed: the timeline then moves to a row of its own."""
        hint = super().minimumSizeHint()
        if not self._two_rows:
            hint.setWidth(hint.width() - TIMELINE_MIN_W - self.position.minimumWidth())
        return hint

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        """Put the timeline on its own row below the buttons when one row would squeeze it."""
        super().resizeEvent(event)
        buttons = sum(w.sizeHint().width() for w in (self.reset_button, self.back_button, self.play_button,
                                                     self.step_button, self._speed_label, self.speed))
        one_row = buttons + TIMELINE_MIN_W + self.position.minimumWidth() + 8 * self._buttons_row.spacing()
        two = event.size().width() < one_row
        if two == self._two_rows:
            return
        self._two_rows = two
        for w in (self.timeline, self.position):
            (self._buttons_row if two else self._timeline_row).removeWidget(w)
        if two:
            self._timeline_row.addWidget(self.timeline, 1)
            self._timeline_row.addWidget(self.position)
        else:
            self._buttons_row.insertWidget(4, self.timeline, 1)
            self._buttons_row.insertWidget(5, self.position)
        self.updateGeometry()

    @property
    def step(self) -> int:
        """The current step."""
        return self._step

    @property
    def length(self) -> int:
        """The last step (number of events)."""
        return self._length

    def is_playing(self) -> bool:
        """True while the timer advances the steps."""
        return self._timer.isActive()

    def set_length(self, length: int, step: int | None = None) -> None:
        """A new timeline of `length` events, positioned at `step` (None: the end)."""
        self._length = max(0, int(length))
        self.set_step(self._length if step is None else step, force=True)

    def set_step(self, k: int, force: bool = False) -> None:
        """Go to step `k` (clamped); emits sig_step_changed when it changes (or when `force`)."""
        k = max(0, min(int(k), self._length))
        changed = k != self._step
        self._step = k
        self._sync()
        if changed or force:
            self.sig_step_changed.emit(k)

    def step_forward(self) -> None:
        """One event on."""
        self.set_step(self._step + 1)

    def step_back(self) -> None:
        """One event back."""
        self.set_step(self._step - 1)

    def reset(self) -> None:
        """Back to step 0 and stop playing."""
        self.pause()
        self.set_step(0)

    def go_end(self) -> None:
        """Jump to the last step."""
        self.set_step(self._length)

    def play(self) -> None:
        """Start playing (from the beginning when at the end)."""
        if self._length == 0:
            return
        if self._step >= self._length:
            self.set_step(0)
        self._timer.start()
        self._sync()
        self.sig_playing_changed.emit(True)

    def pause(self) -> None:
        """Stop playing."""
        if self._timer.isActive():
            self._timer.stop()
            self._sync()
            self.sig_playing_changed.emit(False)

    def toggle_play(self) -> None:
        """Play or pause."""
        self.pause() if self.is_playing() else self.play()

    def handle_key(self, key: int) -> bool:
        """Space plays/pauses, Right steps, Left steps back, Home resets, End jumps to the end."""
        actions = {Qt.Key_Space: self.toggle_play, Qt.Key_Right: self.step_forward,
                   Qt.Key_Left: self.step_back, Qt.Key_Home: self.reset, Qt.Key_End: self.go_end}
        action = actions.get(key)
        if action is None:
            return False
        action()
        return True

    # -- private -----------------------------------------------------------------------------

    def _button(self, text: str, name: str, tip: str) -> QPushButton:
        button = QPushButton(text)
        button.setObjectName(name)
        button.setToolTip(tip)
        button.setAccessibleName(tip.split(" (")[0])
        # buttons must not take the keyboard focus, or Space would click them instead of playing
        button.setFocusPolicy(Qt.NoFocus)
        return button

    def _apply_speed(self) -> None:
        self._timer.setInterval(int(1000 / max(1, self.speed.value())))

    def _tick(self) -> None:
        if self._step >= self._length:
            self.pause()
            return
        self.step_forward()
        if self._step >= self._length:
            self.pause()

    def _sync(self) -> None:
        self.timeline.blockSignals(True)
        self.timeline.setRange(0, self._length)
        self.timeline.setValue(self._step)
        self.timeline.blockSignals(False)
        self.position.setText(f"{self._step} / {self._length}")
        self.play_button.setText("❚❚ Pause" if self.is_playing() else "▶ Play")
        self.back_button.setEnabled(self._step > 0)
        self.reset_button.setEnabled(self._step > 0 or self.is_playing())
        self.step_button.setEnabled(self._step < self._length)
        self.play_button.setEnabled(self._length > 0)
