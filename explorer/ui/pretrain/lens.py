"""Looking inside a trained run: the logit lens and the per-token loss of its validation text.

Two tabs of the pretraining workspace, on the selected (else the latest) run's checkpoint, loaded and
computed off the GUI thread by a Worker (explorer/core/gpt/lens.py does the work):

- **Logit lens** (objectName pretrainLogitLens): for a prompt, a grid of layers x positions; each cell is
  the token that layer's residual stream would predict next (read through the final norm and the head)
  and its probability, coloured by it; the pointer's cell reads out its top-k below.
- **Per-token loss** (pretrainTokenLoss): a passage of the run's validation text, each token coloured by
  its loss, with a legend; the pointer's token reads out what the model expected there.

Corpus text is untrusted: tokens are shown as a table model's plain display text and through
QPainter.drawText, never as HTML, and nothing is loaded.
"""

from __future__ import annotations

import bisect
import math
from functools import lru_cache
from pathlib import Path

import numpy as np
from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QLinearGradient, QPainter, QPen
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from explorer.core.gpt.lens import (
    DEFAULT_TOP_K,
    MAX_PASSAGE_TOKENS,
    PASSAGE_TOKENS,
    LensResult,
    TokenLosses,
    compute_logit_lens,
    compute_token_losses,
)
from explorer.core.numbers import fmt_number, fmt_percent
from explorer.ui.common import theme as themes
from explorer.ui.common.labels import ElidedLabel
from explorer.ui.common.worker import Worker
from explorer.ui.pretrain.attention import token_label

LENS_EXPLANATION = (
    "Each row reads one layer's residual stream through the final norm and the head (the embedding at the "
    "bottom, the model's own output on top): its guess for the next token, and how sure. Bold: the "
    "prompt's real next token.")
LOSS_EXPLANATION = (
    "The run's validation text (never trained on), each token coloured by its loss −ln p(token | what came "
    "before): pale was expected, full red as surprising as a uniform guess. Read in context-length windows "
    "as in training (a grey bar starts each).")
NO_RUN = "No trained run yet: train a run (or stop one) so that it leaves a checkpoint, then press {button}."
CELL_WIDTH = 50
ROW_HEIGHT = 40  # a lens row's least height (two lines of text); rows grow to fill the view up to
MAX_ROW_HEIGHT = 72
BAR_WIDTH = 140  # the colour scale's bar in the legends
LEFT, TOP = 6.0, 4.0  # the loss view's margins
TEXT_FLAGS = int((Qt.AlignCenter | Qt.TextSingleLine).value)  # combined once: enum arithmetic is slow
HOT = {"light": "#dc2626", "dark": "#ef4444"}  # the loss colour at the top of its scale
SURE = {"light": "#2563eb", "dark": "#3b82f6"}  # the probability colour at 1


SHADES = 64  # colour steps of a scale (cells and tokens take the nearest: colours are computed once)


def shade(low: str, high: str, t: float) -> str:
    """The colour of a scale from `low` to `high` at `t` (0..1, clipped; NaN as 0), to the nearest of
    SHADES steps."""
    t = 0.0 if not t == t else min(1.0, max(0.0, float(t)))
    return _shade(low, high, round(t * SHADES))


@lru_cache(maxsize=4096)
def _shade(low: str, high: str, step: int) -> str:
    return mix(low, high, step / SHADES)


def mix(low: str, high: str, t: float) -> str:
    """The colour a share `t` (0..1, clipped; NaN counts as 0) of the way from `low` to `high` ("#rrggbb")."""
    t = 0.0 if not t == t else min(1.0, max(0.0, float(t)))
    a = [int(low.lstrip("#")[i:i + 2], 16) for i in (0, 2, 4)]
    b = [int(high.lstrip("#")[i:i + 2], 16) for i in (0, 2, 4)]
    return "#" + "".join(f"{round(x + (y - x) * t):02x}" for x, y in zip(a, b, strict=True))


def text_on(background: str, theme: dict[str, str]) -> str:
    """A text colour that reads on `background` (contrast ratio at least 4.5): the theme's text or panel
    colour, whichever reads better, else black or white (one of them always does)."""
    return _text_on(background, theme["text"], theme["panel"])


@lru_cache(maxsize=4096)
def _text_on(background: str, text: str, panel: str) -> str:
    best = max((text, panel), key=lambda c: themes.contrast_ratio(c, background))
    if themes.contrast_ratio(best, background) >= 4.5:
        return best
    return max(("#000000", "#ffffff"), key=lambda c: themes.contrast_ratio(c, background))


@lru_cache(maxsize=65536)
def shown_token(token: str) -> str:
    """A token as the loss view draws it: line ends and tabs as visible marks, other control characters
    as "·" (so nothing moves the text around)."""
    out = token.replace("\r\n", "\n").replace("\n", "↵").replace("\t", "⇥")
    return "".join("·" if ord(ch) < 32 or 0x7f <= ord(ch) < 0xa0 else ch for ch in out)


def top_text(tokens: list[str], probs) -> str:
    """"‘e’ 0.4213 · ‘a’ 0.1032 · …": top predictions and their probabilities, one line."""
    pairs = zip(tokens, probs, strict=True)
    return " · ".join(f"‘{token_label(t, 12)}’ {fmt_number(float(p))}" for t, p in pairs)


def checkpoint_to_inspect(panel, button: str) -> tuple[dict | None, str]:
    """The checkpoint the lens tabs look at (the panel's model source) or None and a one-line reason: the
    selected run's checkpoint is missing or its folder is gone, or no run has a checkpoint yet."""
    workspace = panel.workspace
    selected = panel.history.current_run_id()
    run = workspace.runs.get(selected) if selected is not None else None
    if run is not None:
        name = run.name.split(" · ")[0]
        if workspace.folder_gone(run.run_id):
            return None, workspace.gone_message(run.run_id)
        if not run.checkpoint:
            return None, (f"{name} has no checkpoint yet: wait for its first one (the form's \"Checkpoint "
                          "every\") or stop it, or select another run.")
        if not Path(run.checkpoint).is_file():
            return None, (f"{name}'s checkpoint is missing ({Path(run.checkpoint).name} is not in its "
                          "folder): select another run.")
    source = panel.model_source()
    if not source.get("checkpoint"):
        return None, NO_RUN.format(button=button)
    source["short_name"] = str(source.get("name") or "The run").split(" · ")[0]
    return source, ""


class ColourLegend(QWidget):
    """A horizontal colour scale with a caption and its two ends' values (plain text, painted)."""

    def __init__(self, caption: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.caption = caption
        self.low_text, self.high_text = "0", "1"
        self.low, self.high = "#ffffff", "#000000"
        self._theme = themes.get_theme()
        self.setFixedHeight(int(QFontMetricsF(self.font()).height()) + 8)
        self.setSizePolicy(QSizePolicy.Fixed, QSizePolicy.Fixed)

    def set_scale(self, low: str, high: str, low_text: str, high_text: str, theme: dict[str, str]) -> None:
        """Colours and labels of the two ends."""
        self.low, self.high, self._theme = low, high, theme
        self.low_text, self.high_text = low_text, high_text
        metrics = QFontMetricsF(self.font())
        words = sum(metrics.horizontalAdvance(t) for t in (self.caption, low_text, high_text))
        self.setFixedWidth(int(words + 24 + BAR_WIDTH))
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        painter = QPainter(self)
        metrics = QFontMetricsF(self.font())
        painter.setPen(QColor(self._theme["muted"]))
        x = 0.0
        for text, before_bar in ((self.caption, True), (self.low_text, True)):
            width = metrics.horizontalAdvance(text)
            painter.drawText(QRectF(x, 0, width + 2, self.height()), Qt.AlignVCenter | Qt.AlignLeft, text)
            x += width + (10 if before_bar and text == self.caption else 6)
        high_width = metrics.horizontalAdvance(self.high_text)
        bar = QRectF(x, 4, max(20.0, self.width() - x - high_width - 8), self.height() - 8)
        gradient = QLinearGradient(bar.topLeft(), bar.topRight())
        gradient.setColorAt(0.0, QColor(self.low))
        gradient.setColorAt(1.0, QColor(self.high))
        painter.fillRect(bar, gradient)
        painter.setPen(QColor(self._theme["card_border"]))
        painter.drawRect(bar)
        painter.setPen(QColor(self._theme["muted"]))
        painter.drawText(QRectF(bar.right() + 6, 0, high_width + 2, self.height()),
                         Qt.AlignVCenter | Qt.AlignLeft, self.high_text)
        painter.end()


# ---------------------------------------------------------------------------------------------
# Logit lens


def _role(role) -> int:
    return role if isinstance(role, int) else int(role.value)


# The roles a lens cell answers, and where each sits in its cached tuple.
_CELL_ROLES = {_role(r): i for i, r in enumerate((Qt.DisplayRole, Qt.BackgroundRole, Qt.ForegroundRole,
                                                     Qt.FontRole, Qt.TextAlignmentRole))}


class LensModel(QAbstractTableModel):
    """The lens as a table: row 0 the last layer (the model's output), the last row the embedding; one
    column per prompt position. Cells are computed when the view asks (only the visible ones)."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.result: LensResult | None = None
        self.theme = themes.get_theme()
        self.bold = QFont()
        self.bold.setBold(True)
        self._cells: dict[tuple[int, int], tuple] = {}  # (row, column) -> what data() answers, as asked

    def set_result(self, result: LensResult | None) -> None:
        """Show another lens."""
        self.beginResetModel()
        self.result = result
        self._cells.clear()
        self.endResetModel()

    def set_theme(self, theme: dict[str, str]) -> None:
        """Recolour every cell."""
        self.theme = theme
        self._cells.clear()
        if self.result is not None and self.rowCount() and self.columnCount():
            self.dataChanged.emit(self.index(0, 0), self.index(self.rowCount() - 1, self.columnCount() - 1))

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: N802, B008 (Qt's names)
        return 0 if self.result is None or parent.isValid() else self.result.n_layers

    def columnCount(self, parent=QModelIndex()) -> int:  # noqa: N802, B008 (Qt's names)
        return 0 if self.result is None or parent.isValid() else len(self.result.ids)

    def layer_of(self, row: int) -> int:
        """The layer a row shows (0: the embedding)."""
        assert self.result is not None
        return self.result.n_layers - 1 - row

    def layer_name(self, layer: int) -> str:
        """How a row is headed: "embedding", "block 1", ..., "block N (output)"."""
        assert self.result is not None
        if layer == 0:
            return "embedding"
        return f"block {layer} (output)" if layer == self.result.n_layers - 1 else f"block {layer}"

    def token(self, token_id: int) -> str:
        """A token's text (the core named every token the result shows)."""
        result = self.result
        return "?" if result is None else result.names.get(int(token_id), f"#{token_id}")

    def colour(self, probability: float) -> str:
        """A cell's background for the probability of its top token."""
        return shade(self.theme["panel"], SURE.get(self.theme["name"], SURE["light"]), probability)

    def data(self, index, role=Qt.DisplayRole):  # noqa: D102 (Qt's)
        role = _role(role)
        if role not in _CELL_ROLES or self.result is None or not index.isValid():
            return None
        key = (index.row(), index.column())
        cell = self._cells.get(key)
        if cell is None:
            cell = self._cells[key] = self._cell(*key)
        return cell[_CELL_ROLES[role]]

    def _cell(self, row: int, t: int) -> tuple:
        """(text, background, foreground, font, alignment) of one cell, in the order of _CELL_ROLES."""
        result = self.result
        layer = self.layer_of(row)
        top, p = int(result.top_ids[layer, t, 0]), float(result.top_probs[layer, t, 0])
        colour = self.colour(p)
        bold = self.bold if t + 1 < len(result.ids) and top == result.ids[t + 1] else None
        return (f"{token_label(self.token(top))}\n{fmt_percent(p)}", QColor(colour),
                QColor(text_on(colour, self.theme)), bold, int(Qt.AlignCenter))

    def headerData(self, section, orientation, role=Qt.DisplayRole):  # noqa: N802 (Qt's name)
        result = self.result
        if result is None or role != Qt.DisplayRole:
            return None
        if orientation == Qt.Horizontal:
            if section >= len(result.tokens):
                return None
            return f"{section}\n{token_label(result.tokens[section])}"
        return self.layer_name(self.layer_of(section)) if section < result.n_layers else None


class CheckpointTab(QWidget):
    """What the two tabs share: a Worker on a run's checkpoint, a status line, an explanation, a readout
    and a legend around the tab's own view, and the hint that names the run a press would read."""

    sig_shown = Signal()
    """A new result is on screen."""

    BUTTON = ""  # the button's text, which the hints name
    READY = ""  # the hint when a run has trained weights (after "<run> has trained weights: ")

    def __init__(self, panel, name: str) -> None:
        super().__init__()
        self.setObjectName(name)
        self._panel = panel
        self._theme = themes.get_theme()
        self.result = None
        self._job = Worker(self)
        self._job.sig_done.connect(self._on_done)

    def _assemble(self, controls: list[QWidget], status: QWidget, explanation: QWidget, body: QWidget,
                  readout: QWidget, legend: QWidget) -> None:
        """Controls in a row, then status, explanation, the body (stretching), readout beside legend."""
        row = QHBoxLayout()
        for widget in controls:
            row.addWidget(widget, 1 if isinstance(widget, QLineEdit) else 0)
        if not any(isinstance(widget, QLineEdit) for widget in controls):
            row.addStretch(1)
        bottom = QHBoxLayout()
        bottom.addWidget(readout, 1)
        bottom.addWidget(legend, 0, Qt.AlignTop)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(status)
        layout.addWidget(explanation)
        layout.addWidget(body, 1)
        layout.addLayout(bottom)
        self.set_theme(self._theme)
        self.refresh_hint()
        finished = getattr(self._panel, "sig_run_finished", None)
        if finished is not None:
            finished.connect(lambda *_: self.refresh_hint())

    def request(self) -> None:
        """Compute off the GUI thread (a training run saves its weights first)."""
        if self.is_busy():
            return
        self.button.setEnabled(False)
        if self._panel.with_fresh_checkpoint(self._start):
            self.status.setText("Asking the training run for its current weights…")

    def is_busy(self) -> bool:
        """True while a computation runs."""
        return self._job.is_busy()

    def show_result(self, result) -> None:
        """Show a finished result (what the background computation hands over)."""
        self._on_done(result)

    def refresh_hint(self) -> None:
        """Before any result: say which run would be read, or how to get one."""
        if self.result is not None or self.is_busy() or not hasattr(self._panel, "model_source"):
            return
        source, reason = checkpoint_to_inspect(self._panel, self.BUTTON)
        self.status.setText(reason or f"{source['short_name']} has trained weights: {self.READY}")

    def shutdown(self) -> None:
        """Stop a running computation."""
        self._job.shutdown()

    def showEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        super().showEvent(event)
        self.refresh_hint()

    def _source(self) -> dict | None:
        """The checkpoint to read, or None with the reason on the status line."""
        self.button.setEnabled(True)
        if self._job.is_busy():
            return None
        source, reason = checkpoint_to_inspect(self._panel, self.BUTTON)
        if source is None:
            self.status.setText(reason)
        return source


class LogitLensTab(CheckpointTab):
    """Prompt, button, the layers x positions grid (logitLensView) and its readout (logitLensReadout)."""

    BUTTON = "Look through the layers"
    READY = "type a prompt and press Look through the layers."

    def __init__(self, panel) -> None:
        super().__init__(panel, "pretrainLogitLens")
        self.result: LensResult | None = None
        self._job.sig_failed.connect(lambda m: self.status.setText(f"Could not read the layers: {m}"))
        self._job.sig_busy_changed.connect(lambda busy: self.button.setEnabled(not busy))
        self.prompt = QLineEdit("The quick brown fox jumps over the lazy dog.")
        self.prompt.setObjectName("logitLensPrompt")
        self.prompt.setToolTip("Text to feed the trained model: up to its context length in tokens (a longer "
                               "prompt is clipped to its last tokens, and the status line says so)")
        self.prompt.returnPressed.connect(self.show_lens)
        self.top_k = QSpinBox()
        self.top_k.setObjectName("logitLensTopK")
        self.top_k.setRange(1, 20)
        self.top_k.setValue(DEFAULT_TOP_K)
        self.top_k.setPrefix("top ")
        self.top_k.setToolTip("How many of each cell's most likely tokens the readout lists")
        self.button = QPushButton("Look through the layers")
        self.button.setObjectName("logitLensRun")
        self.button.setToolTip("Run the prompt through the selected (or latest) run's checkpoint and read "
                               "every layer's residual stream through the final norm and head (Enter)")
        self.button.clicked.connect(self.show_lens)
        self.status = ElidedLabel("", lines=2)
        self.status.setObjectName("logitLensStatus")
        self.explanation = ElidedLabel(LENS_EXPLANATION, lines=3)
        self.model = LensModel(self)
        self.table = QTableView()
        self.table.setObjectName("logitLensView")
        self.table.setModel(self.model)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.setMouseTracking(True)
        self.table.setWordWrap(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.Fixed)
        self.table.horizontalHeader().setDefaultSectionSize(CELL_WIDTH)
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.Fixed)
        self.table.verticalHeader().setDefaultSectionSize(ROW_HEIGHT)
        self.table.entered.connect(lambda index: self.point_at(index.row(), index.column()))
        self.table.selectionModel().currentChanged.connect(
            lambda index, _previous: self.point_at(index.row(), index.column()))
        self.legend = ColourLegend("probability of the top token")
        self.legend.setObjectName("logitLensLegend")
        self.readout = ElidedLabel("Point at a cell to read its top predictions.", lines=2)
        self.readout.setObjectName("logitLensReadout")
        self._assemble([QLabel("Prompt"), self.prompt, self.top_k, self.button], self.status,
                       self.explanation, self.table, self.readout, self.legend)

    # -- public ---------------------------------------------------------------------------------
    def show_lens(self) -> None:
        """Compute the lens for the prompt off the GUI thread (a training run saves its weights first)."""
        self.request()

    def cell(self, layer: int, position: int) -> dict | None:
        """What the cell of `layer` (0: the embedding) at `position` shows: text, background, foreground
        (colour names) and bold (tests and scripts)."""
        if self.result is None:
            return None
        index = self.model.index(self.result.n_layers - 1 - layer, position)
        data = self.model.data
        return {"text": data(index), "background": data(index, Qt.BackgroundRole).name(),
                "foreground": data(index, Qt.ForegroundRole).name(),
                "bold": self.model.data(index, Qt.FontRole) is not None}

    def set_theme(self, theme: dict[str, str]) -> None:
        """Recolour the explanation, the legend and every cell."""
        self._theme = theme
        self.explanation.setStyleSheet(f"color:{theme['muted']};")
        self.legend.set_scale(theme["panel"], SURE.get(theme["name"], SURE["light"]), "0%", "100%", theme)
        self.model.set_theme(theme)

    # -- work -----------------------------------------------------------------------------------
    def _start(self) -> None:
        source = self._source()
        if source is None:
            return
        prompt = self.prompt.text()
        if not prompt.strip():
            self.status.setText("Type a prompt first.")
            return
        checkpoint, name, k = source["checkpoint"], source["short_name"], self.top_k.value()
        self.status.setText(f"Reading {name}'s layers…")
        self._job.submit(lambda _job: compute_logit_lens(checkpoint, prompt, name, top_k=k))

    def _on_done(self, result: LensResult) -> None:
        self.result = result
        n, T = result.n_layers, len(result.ids)
        text = (f"{result.name} at step {result.step}: {T} tokens through the embedding and {n - 1} "
                f"block{'s' if n != 2 else ''}.")
        if result.clipped:
            text += (f" The prompt has {T + result.clipped} tokens; the model reads at most {T} (its context "
                     f"length), so the first {result.clipped} are left out.")
        self.status.setText(text)
        self.model.set_result(result)
        self._fit_rows()
        self.readout.setText("Point at a cell to read its top predictions.")
        self.sig_shown.emit()

    def _fit_rows(self) -> None:
        """Rows share the view's height (between ROW_HEIGHT and MAX_ROW_HEIGHT each)."""
        rows = self.model.rowCount()
        if not rows:
            return
        room = self.table.viewport().height()
        self.table.verticalHeader().setDefaultSectionSize(max(ROW_HEIGHT, min(MAX_ROW_HEIGHT, room // rows)))

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        super().resizeEvent(event)
        self._fit_rows()

    def point_at(self, row: int, column: int) -> None:
        """Read out the top-k of the cell at (row, column) of the table."""
        result = self.result
        if result is None or not (0 <= row < result.n_layers and 0 <= column < len(result.ids)):
            return
        layer = result.n_layers - 1 - row
        tokens = [self.model.token(int(i)) for i in result.top_ids[layer, column]]
        reading = token_label(result.tokens[column], 12)
        text = (f"{self.model.layer_name(layer)} · position {column}, after ‘{reading}’: "
                + top_text(tokens, result.top_probs[layer, column]))
        if column + 1 < len(result.ids):
            text += f"   (the prompt goes on with ‘{token_label(result.tokens[column + 1], 12)}’)"
        self.readout.setText(text)


# ---------------------------------------------------------------------------------------------
# Per-token loss


class TokenTextView(QWidget):
    """Tokens drawn as flowing text, each on a background coloured by its loss (objectName tokenLossView).

    Plain-text painting only. `sig_hovered(index)` names the token under the pointer."""

    sig_hovered = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("tokenLossView")
        self.setMouseTracking(True)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Preferred)
        self.tokens: list[str] = []
        self.colours: list[str | None] = []
        self.marks: set[int] = set()  # tokens that start a context window
        self._widths: list[float] = []  # each token's drawn width (measured once per passage)
        self._xs: list[float] = []  # each token's left edge
        self._lines: list[int] = []  # each token's line
        self._line_starts: list[int] = [0]  # the first token of each line, then len(tokens)
        self._line_height = 0.0
        self.hovered = -1
        self._theme = themes.get_theme()
        font = QFont(self.font())
        font.setStyleHint(QFont.Monospace)
        font.setFamily("monospace")
        self.setFont(font)

    def set_tokens(self, tokens: list[str], colours: list[str | None], marks: set[int]) -> None:
        """Show `tokens`, the i-th on `colours[i]` (None: no colour), a bar before each of `marks`."""
        self.tokens, self.colours, self.marks = [shown_token(t) for t in tokens], list(colours), set(marks)
        metrics = QFontMetricsF(self.font())
        measured: dict[str, float] = {}  # a passage repeats few distinct tokens: each is measured once
        for token in self.tokens:
            if token not in measured:
                measured[token] = max(metrics.horizontalAdvance(token), 4.0) + 1
        self._widths = [measured[t] for t in self.tokens]
        self.hovered = -1
        self._layout()
        self.update()

    def set_theme(self, theme: dict[str, str]) -> None:
        """Colours of the page and its text."""
        self._theme = theme
        self.update()

    def token_at(self, point: QPointF) -> int:
        """Index of the token drawn at `point` (-1: none): its line, then a bisection along the line."""
        line = math.floor((point.y() - TOP) / self._line_height) if self._line_height else -1
        if not 0 <= line < len(self._line_starts) - 1 or point.y() > self.rect_of_line(line).bottom():
            return -1
        first, end = self._line_starts[line], self._line_starts[line + 1]
        i = bisect.bisect_right(self._xs, point.x(), first, end) - 1
        return i if i >= first and point.x() < self._xs[i] + self._widths[i] else -1

    def rect_of_line(self, line: int) -> QRectF:
        """Where line `line` of tokens is drawn."""
        return QRectF(LEFT, TOP + line * self._line_height, self.width(), self._line_height - 2)

    def token_rect(self, index: int) -> QRectF:
        """Where token `index` is drawn."""
        y = TOP + self._lines[index] * self._line_height
        return QRectF(self._xs[index], y, self._widths[index], self._line_height - 2)

    @property
    def rects(self) -> list[QRectF]:
        """Every token's rectangle, in order (tests and scripts)."""
        return [self.token_rect(i) for i in range(len(self.tokens))]

    def _layout(self) -> None:
        """Place the tokens in lines (greedy, a line end breaks): x and line of each, first of each line."""
        self._line_height = line_height = QFontMetricsF(self.font()).height() + 6
        right = max(100.0, self.width() - 12.0) + LEFT
        xs, lines, starts = [], [], [0]
        x, line = LEFT, 0
        for i, (token, w) in enumerate(zip(self.tokens, self._widths, strict=True)):
            if x + w > right and x > LEFT:
                x, line = LEFT, line + 1
                starts.append(i)
            xs.append(x)
            lines.append(line)
            x += w
            if token.endswith("↵") and i + 1 < len(self.tokens):
                x, line = LEFT, line + 1
                starts.append(i + 1)
        starts.append(len(self.tokens))
        self._xs, self._lines, self._line_starts = xs, lines, starts
        height = int(TOP + (line + 1) * line_height + 8)
        if self.minimumHeight() != height:
            self.setMinimumHeight(height)

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        super().resizeEvent(event)
        self._layout()

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        painter = QPainter(self)
        theme = self._theme
        exposed = QRectF(event.rect())
        painter.fillRect(exposed, QColor(theme["panel"]))
        if not self.tokens or not self._line_height:
            painter.end()
            return
        # a long passage: only the lines the scroll area shows are drawn
        lines = len(self._line_starts) - 1
        first = max(0, min(lines - 1, math.floor((exposed.top() - TOP) / self._line_height)))
        last = max(0, min(lines - 1, math.floor((exposed.bottom() - TOP) / self._line_height)))
        brushes: dict[str, QColor] = {}  # one QColor per colour of the scale, not one per token
        pens: dict[str | None, QColor] = {}
        pen = None
        for i in range(self._line_starts[first], self._line_starts[last + 1]):
            token, rect = self.tokens[i], self.token_rect(i)
            colour = self.colours[i] if i < len(self.colours) else None
            if colour is not None:
                brush = brushes.get(colour)
                if brush is None:
                    brush = brushes[colour] = QColor(colour)
                painter.fillRect(rect, brush)
            if colour not in pens:
                pens[colour] = QColor(text_on(colour, theme) if colour else theme["muted"])
            if pens[colour] is not pen:
                pen = pens[colour]
                painter.setPen(pen)
            painter.drawText(rect, TEXT_FLAGS, token)
            if i in self.marks and i:
                pen = None
                painter.setPen(QPen(QColor(theme["muted"]), 2))
                painter.drawLine(rect.topLeft() + QPointF(-1, 0), rect.bottomLeft() + QPointF(-1, 0))
            if i == self.hovered:
                pen = None
                painter.setPen(QPen(QColor(theme["text"]), 1.5))
                painter.drawRect(rect.adjusted(0.5, 0.5, -0.5, -0.5))
        painter.end()

    def mouseMoveEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        index = self.token_at(event.position())
        if index != self.hovered and index >= 0:
            self.hovered = index
            self.update()
            self.sig_hovered.emit(index)
        super().mouseMoveEvent(event)


class TokenLossTab(CheckpointTab):
    """Passage length, Score/Cancel, progress, the coloured text (tokenLossView) and its readout."""

    BUTTON = "Score the validation text"
    READY = "press Score the validation text to see which tokens surprise it."

    def __init__(self, panel) -> None:
        super().__init__(panel, "pretrainTokenLoss")
        self.result: TokenLosses | None = None
        self.scale_top = 1.0  # the loss at the top of the colour scale
        self._job.sig_failed.connect(self._on_failed)
        self._job.sig_progress.connect(self._on_progress)
        self._job.sig_busy_changed.connect(self._on_busy)
        self.length = QSpinBox()
        self.length.setObjectName("tokenLossLength")
        self.length.setRange(16, MAX_PASSAGE_TOKENS)
        self.length.setSingleStep(128)
        self.length.setValue(PASSAGE_TOKENS)
        self.length.setSuffix(" tokens")
        self.length.setToolTip("How much of the validation text to score, from its start")
        self.button = QPushButton("Score the validation text")
        self.button.setObjectName("tokenLossRun")
        self.button.setToolTip("Run the selected (or latest) run's checkpoint over the start of its "
                               "validation split and colour each token by its cross-entropy loss")
        self.button.clicked.connect(self.score)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("tokenLossCancel")
        self.cancel_button.setToolTip("Stop scoring")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.progress = QProgressBar()
        self.progress.setObjectName("tokenLossProgress")
        self.progress.setFormat("%v / %m tokens")
        self.progress.setFixedWidth(200)
        self.progress.setValue(0)
        self.status = ElidedLabel("", lines=2)
        self.status.setObjectName("tokenLossStatus")
        self.explanation = ElidedLabel(LOSS_EXPLANATION, lines=3)
        self.view = TokenTextView()
        self.view.sig_hovered.connect(self.point_at)
        self.scroll = QScrollArea()
        self.scroll.setWidget(self.view)
        self.scroll.setWidgetResizable(True)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.legend = ColourLegend("loss (nats)")
        self.legend.setObjectName("tokenLossLegend")
        self.readout = ElidedLabel("Point at a token to read what the model expected there.", lines=2)
        self.readout.setObjectName("tokenLossReadout")
        self._assemble([QLabel("Passage"), self.length, self.button, self.cancel_button, self.progress],
                       self.status, self.explanation, self.scroll, self.readout, self.legend)

    # -- public ---------------------------------------------------------------------------------
    def score(self) -> None:
        """Score the passage off the GUI thread (a training run saves its weights first)."""
        self.request()

    def cancel(self) -> None:
        """Stop a running scoring; what was on screen stays."""
        if self._job.is_busy():
            self._job.cancel()
            self.status.setText("Cancelled.")

    def colour_of(self, loss: float | None) -> str | None:
        """The background of a token with this loss (None: the first token, which nothing predicts)."""
        if loss is None or not math.isfinite(loss):
            return None
        return shade(self._theme["panel"], HOT.get(self._theme["name"], HOT["light"]), loss / self.scale_top)

    def set_theme(self, theme: dict[str, str]) -> None:
        """Recolour the text, the legend and the explanation."""
        self._theme = theme
        self.explanation.setStyleSheet(f"color:{theme['muted']};")
        self.view.set_theme(theme)
        self.legend.set_scale(theme["panel"], HOT.get(theme["name"], HOT["light"]), "0",
                              f"{fmt_number(self.scale_top)}+ (a uniform guess)", theme)
        if self.result is not None:
            self._paint_tokens()

    # -- work -----------------------------------------------------------------------------------
    def _start(self) -> None:
        source = self._source()
        if source is None:
            return
        checkpoint, name, n = source["checkpoint"], source["short_name"], self.length.value()
        self.status.setText(f"Scoring {name} on its validation text…")
        self.progress.setRange(0, n - 1)
        self.progress.setValue(0)

        def work(job):
            return compute_token_losses(checkpoint, name, n_tokens=n,
                                        progress=lambda done, total: job.progress((done, total)),
                                        cancelled=lambda: job.cancelled)

        self._job.submit(work)

    def _on_progress(self, batch: list) -> None:
        done, total = batch[-1]
        self.progress.setRange(0, total)
        self.progress.setValue(done)

    def _on_busy(self, busy: bool) -> None:
        self.button.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)

    def _on_failed(self, message: str) -> None:
        self.status.setText(f"Could not score the text: {message}")

    def _on_done(self, result: TokenLosses) -> None:
        self.result = result
        # The colour saturates at a uniform guess's loss, ln V: redder than that, the model did worse than
        # not knowing anything.
        self.scale_top = math.log(result.vocab_size) if result.vocab_size > 1 else 1.0
        self.progress.setRange(0, max(1, len(result.losses)))
        self.progress.setValue(len(result.losses))
        vocab = result.vocab_size
        guess = f" (a uniform guess over {vocab} tokens: ln {vocab} = {fmt_number(math.log(vocab))})" \
            if vocab > 1 else ""
        self.status.setText(f"{result.name} at step {result.step}: mean loss {fmt_number(result.mean)} nats "
                            f"over {len(result.losses)} predicted tokens{guess}. {result.note}.")
        self.set_theme(self._theme)
        self.readout.setText("Point at a token to read what the model expected there.")
        self.sig_shown.emit()

    def _paint_tokens(self) -> None:
        result = self.result
        assert result is not None
        # every token's step of the colour scale at once (what colour_of gives one token)
        losses = np.asarray(result.losses, dtype=np.float64)
        finite = np.isfinite(losses)
        share = np.clip(np.where(finite, losses, 0.0) / self.scale_top, 0.0, 1.0)
        steps = np.rint(share * SHADES).astype(int).tolist()
        low, high = self._theme["panel"], HOT.get(self._theme["name"], HOT["light"])
        palette = [_shade(low, high, k) for k in range(SHADES + 1)]
        colours = [None] + [palette[k] if ok else None for k, ok in zip(steps, finite.tolist(), strict=True)]
        self.view.set_tokens(result.tokens, colours, set(result.window_starts))

    def point_at(self, index: int) -> None:
        """Read out the loss of token `index` and the model's top predictions there."""
        result = self.result
        if result is None or not 0 <= index < len(result.ids):
            return
        token = token_label(result.tokens[index], 12)
        loss = result.loss_of_token(index)
        if loss is None:
            self.readout.setText(f"token 0 ‘{token}’: the passage's first token; nothing before it to "
                                 "predict it from.")
            return
        tops = [result.names.get(int(i), f"#{int(i)}") for i in result.top_ids[index - 1]]
        self.readout.setText(f"token {index} ‘{token}’: loss {fmt_number(loss)} nats (p = "
                             f"{fmt_number(math.exp(-loss))}). The model expected "
                             + top_text(tops, result.top_probs[index - 1]))
