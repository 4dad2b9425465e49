"""Attention maps of a trained run: for a prompt, one heatmap per layer and head.

The checkpoint the training process wrote is loaded here, in the UI process, and the maps are
computed in a background thread; only the finished numpy array reaches the GUI thread. A prompt is read
up to the model's context length (a note says so when it is cut); every map names its tokens (thinned
to what fits), one colour bar gives the scale, and the pointer over a cell reads out its weight.
"""

from __future__ import annotations

import math

import pyqtgraph as pg
from PySide6.QtCore import QPointF, Signal
from PySide6.QtGui import QFontMetrics
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QLineEdit, QPushButton, QVBoxLayout, QWidget

from explorer.core.numbers import fmt_number
from explorer.core.workspaces.pretrain import AttentionResult, compute_attention
from explorer.ui.common import theme as themes
from explorer.ui.common.labels import ElidedLabel, keep_space_when_hidden
from explorer.ui.common.plot_menus import add_plot
from explorer.ui.common.worker import Worker

LABEL_CHARS = 6  # a token's axis label is cut to this many characters (BPE tokens can be long)
MAX_CELLS_AT_ONCE = 48  # above this many layer x head maps, one layer is shown at a time
NO_MODEL_HINT = "Train (or stop) a run, then press Show attention."
EXPLANATION = ("Each square is one head: row = the token that is looking (query), column = the token it "
               "looks at (key); a row's colours sum to 1 (softmax). The upper-right triangle stays empty: "
               "the causal mask forbids looking at future tokens.")


def token_label(token: str, chars: int = LABEL_CHARS) -> str:
    """A token as an axis label: whitespace made visible, cut to `chars` characters with "…"."""
    text = {"\n": "↵", " ": "␣", "\t": "⇥"}.get(token, token.replace("\n", "↵").replace("\t", "⇥"))
    return text if len(text) <= chars else text[:chars - 1] + "…"


def token_ticks(tokens: list[str], room_px: float, label_px: float) -> list[tuple[float, str]]:
    """Axis ticks naming the tokens at their cells' centres: every one when they fit in `room_px`, else
    every k-th (k as small as lets each label have `label_px`), so a long prompt keeps labels."""
    if not tokens:
        return []
    every = max(1, math.ceil(len(tokens) * label_px / max(room_px, 1.0)))
    return [(i + 0.5, token_label(tok)) for i, tok in enumerate(tokens) if i % every == 0]


def hover_text(result: AttentionResult, layer: int, head: int, query: int, key: int) -> str:
    """What the pointer over one cell reads, e.g. "layer 0 · head 1: query 5 ('o') attends to key 2
    ('e'): 0.2345"."""
    weight = float(result.maps[layer, head, query, key])
    return (f"layer {layer} · head {head}: query {query} ({token_label(result.tokens[query], 12)!r}) "
            f"attends to key {key} ({token_label(result.tokens[key], 12)!r}): {fmt_number(weight)}")


class AttentionTab(QWidget):
    """Prompt, Show button and the grid of heatmaps (objectName pretrainAttention)."""

    sig_shown = Signal()
    """New maps are on screen."""

    def __init__(self, panel, later: bool = False) -> None:
        """`later`: build nothing yet; the owner runs `build_steps()` (a panel built in slices)."""
        super().__init__()
        self.setObjectName("pretrainAttention")
        self._panel = panel
        if not later:
            for _ in self.build_steps():
                pass

    def build_steps(self):
        """The controls and the map canvas, then the colour map, then the colour bar: one piece per `yield`
        (pyqtgraph's ColorBarItem is a whole PlotItem; the colour map is read from pyqtgraph's files)."""
        panel = self._panel
        self._theme = themes.get_theme()
        self._cells: list[tuple[pg.PlotItem, int, int]] = []  # (plot, layer, head) of each heatmap
        self._images: list[pg.ImageItem] = []
        self._job = Worker(self)
        self._job.sig_done.connect(self._on_done)
        self._job.sig_failed.connect(self._on_failed)
        self._job.sig_busy_changed.connect(lambda busy: busy or self._on_job_finished())
        self.result: AttentionResult | None = None
        self.prompt = QLineEdit("The quick brown fox jumps over the lazy dog.")
        self.prompt.setObjectName("attentionPrompt")
        self.prompt.setToolTip("Text to feed the trained model: up to its context length in tokens (a "
                               "longer prompt is cut at the start, and a note says so)")
        self.prompt.returnPressed.connect(self.show_attention)
        self.button = QPushButton("Show attention")
        self.button.setObjectName("attentionButton")
        self.button.setToolTip("Run the prompt through the selected (or latest) run's checkpoint and draw "
                               "its attention (Enter)")
        self.button.clicked.connect(self.show_attention)
        self.layer = QComboBox()
        self.layer.setToolTip("Which layer's heads to show")
        self.layer.currentIndexChanged.connect(self._draw)
        self.status = ElidedLabel(NO_MODEL_HINT, lines=1)
        self.status.setObjectName("attentionStatus")
        self.cut_note = keep_space_when_hidden(ElidedLabel("", lines=1))
        self.cut_note.setObjectName("attentionCutNote")
        self.cut_note.hide()
        self.explanation = ElidedLabel(EXPLANATION, lines=2)
        self.hover = ElidedLabel("Point at a cell to read its weight.", lines=1)
        self.hover.setObjectName("attentionHover")
        self.canvas = pg.GraphicsLayoutWidget()
        # no tooltip over the maps (a big one covered a row of them): the explanation is the line above
        # and the readout below names the cell under the pointer
        self.canvas.scene().sigMouseMoved.connect(self._on_mouse_moved)
        # the colour scale beside the maps (its own view, so the map grid holds only heatmaps)
        self.scale_view = pg.GraphicsLayoutWidget()
        self.scale_view.setObjectName("attentionColourBar")
        self.scale_view.setFixedWidth(86)
        self.scale_view.setToolTip("Attention weight: 0 (ignored) to 1 (all of the query's attention)")
        yield
        colour_map = pg.colormap.get("viridis")  # cached by pyqtgraph after the first read
        yield
        self.colour_bar = pg.ColorBarItem(values=(0.0, 1.0), colorMap=colour_map,
                                          interactive=False, width=14, label="attention weight",
                                          colorMapMenu=False)
        self.scale_view.addItem(self.colour_bar)
        row = QHBoxLayout()
        row.addWidget(QLabel("Prompt"))
        row.addWidget(self.prompt, 1)
        row.addWidget(self.button)
        row.addWidget(QLabel("Layer"))
        row.addWidget(self.layer)
        maps = QHBoxLayout()
        maps.addWidget(self.canvas, 1)
        maps.addWidget(self.scale_view)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.status)
        layout.addWidget(self.cut_note)
        layout.addWidget(self.explanation)
        layout.addLayout(maps, 1)
        layout.addWidget(self.hover)
        self.set_theme(self._theme)
        finished = getattr(panel, "sig_run_finished", None)
        if finished is not None:  # the hint says when a finished run has left weights to look at
            finished.connect(lambda *_: self.refresh_hint())

    def refresh_hint(self) -> None:
        """Before any maps: say whether there is a checkpoint to look at (which run), or how to get one."""
        if self.result is not None or self.is_busy() or not hasattr(self._panel, "model_source"):
            return
        try:
            source = self._panel.model_source()
        except Exception:  # noqa: BLE001 - a hint is never worth an error dialog
            return
        if source.get("checkpoint"):
            self.status.setText(f"{source.get('name') or 'The run'} has trained weights: press Show "
                                "attention to see where each token looks.")
        else:
            self.status.setText(NO_MODEL_HINT)

    def showEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        """The hint is brought up to date whenever the tab comes into view."""
        super().showEvent(event)
        self.refresh_hint()

    def is_busy(self) -> bool:
        """True while maps are being computed (the button is disabled meanwhile)."""
        return self._job.is_busy()

    def set_theme(self, theme: dict[str, str]) -> None:
        """Recolour the canvas, colour bar, notes and every heatmap's title and axes."""
        self._theme = theme
        for view in (self.canvas, self.scale_view):
            view.setBackground(theme["panel"])
        self.colour_bar.axis.setPen(theme["muted"])
        self.colour_bar.axis.setTextPen(theme["muted"])
        self.explanation.setStyleSheet(f"color:{theme['muted']};")
        self.cut_note.setStyleSheet(f"color:{theme['number']}; font-weight:600;")
        for plot, layer, head in self._cells:
            themes.style_plot(None, plot, theme, f"layer {layer} · head {head}", "8pt")

    def show_attention(self) -> None:
        """Compute the maps for the prompt in a background thread (a running run saves its weights first)."""
        if self.is_busy():
            return
        self.button.setEnabled(False)
        if self._panel.with_fresh_checkpoint(self._start):
            self.status.setText("Asking the training run for its current weights…")

    def show_result(self, result: AttentionResult) -> None:
        """Draw finished maps (what a background computation hands over)."""
        self._on_done(result)

    def axis_ticks(self, side: str) -> list[tuple[float, str]]:
        """The token labels on the left axis of the first column or the bottom axis of the last row."""
        return list(getattr(self, "_ticks", {}).get(side, []))

    def cell_centre(self, index: int, query: int, key: int) -> QPointF:
        """Where cell (query, key) of the index-th heatmap is, in the canvas scene (for tests)."""
        plot = self._cells[index][0]
        return plot.getViewBox().mapViewToScene(QPointF(key + 0.5, query + 0.5))

    def _start(self) -> None:
        self.button.setEnabled(True)
        if self._job.is_busy():
            return
        source = self._panel.model_source()
        if not source.get("checkpoint"):
            self.status.setText("No trained model yet: train a run (or stop one) so that it leaves a "
                                "checkpoint, then press Show attention.")
            return
        prompt = self.prompt.text()
        if not prompt.strip():
            self.status.setText("Type a prompt first.")
            return
        self.status.setText(f"Computing the attention of {source['name']}…")
        self.button.setEnabled(False)
        self._job.submit(lambda _job: compute_attention(source["checkpoint"], prompt, source["name"]))

    def shutdown(self) -> None:
        """Wait for a running computation (it is short)."""
        self._job.shutdown()

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        super().resizeEvent(event)
        self._label_axes()

    def _on_job_finished(self) -> None:
        self.button.setEnabled(True)

    def _on_failed(self, message: str) -> None:
        self.status.setText(f"Could not compute attention: {message}")

    def _on_done(self, result: AttentionResult) -> None:
        self.result = result
        n_layers = result.maps.shape[0]
        self.layer.blockSignals(True)
        self.layer.clear()
        if n_layers * result.maps.shape[1] <= MAX_CELLS_AT_ONCE:
            self.layer.addItem("all layers")
        self.layer.addItems([f"layer {i}" for i in range(n_layers)])
        self.layer.blockSignals(False)
        self.status.setText(f"{result.name} at step {result.step}: {len(result.tokens)} tokens, "
                            f"{n_layers} layers × {result.maps.shape[1]} heads.")
        self.cut_note.setText(result.cut_note())
        self.cut_note.setVisible(bool(result.cut))
        self._draw()
        self.sig_shown.emit()

    def _draw(self, *_: object) -> None:
        result = self.result
        self.canvas.clear()
        self._cells, self._images = [], []
        if result is None:
            return
        text = self.layer.currentText()
        if text.startswith("layer "):
            layers = [int(text.split()[-1])]
        else:
            layers = list(range(result.maps.shape[0]))
        n_heads = result.maps.shape[1]
        T = len(result.tokens)
        cmap = pg.colormap.get("viridis")
        for r, layer in enumerate(layers):
            for h in range(n_heads):
                plot = add_plot(self.canvas, row=r, col=h)
                image = pg.ImageItem(result.maps[layer, h], axisOrder="row-major")
                image.setColorMap(cmap)
                image.setLevels((0.0, 1.0))
                plot.addItem(image)
                plot.invertY(True)
                plot.setAspectLocked(True)  # square cells: a T x T map stays square in any layout
                plot.setMouseEnabled(False, False)
                plot.hideButtons()
                plot.setRange(xRange=(0, T), yRange=(0, T), padding=0)
                # Every cell keeps its axes (so all heatmaps get the same size); only the first column
                # and the last row name the tokens.
                for side in ("left", "bottom"):
                    plot.getAxis(side).setStyle(tickLength=-3)
                self._cells.append((plot, layer, h))
                self._images.append(image)
        self.colour_bar.setImageItem(self._images)
        self.set_theme(self._theme)
        self._label_axes()

    def _label_axes(self) -> None:
        """Token labels thinned to what the current cell size holds (again after each resize)."""
        result = self.result
        if result is None or not self._cells:
            return
        layers = sorted({layer for _p, layer, _h in self._cells})
        heads = len({h for _p, _l, h in self._cells})
        rows = len(layers)
        metrics = QFontMetrics(self.canvas.font())
        width = max(1, self.canvas.width() - 60) / max(heads, 1)
        height = max(1, self.canvas.height() - 30 * rows) / max(rows, 1)
        widest = max(metrics.horizontalAdvance(token_label(t)) for t in result.tokens) + 6
        self._ticks = {"left": token_ticks(result.tokens, height - 20, metrics.height()),
                       "bottom": token_ticks(result.tokens, width - 40, widest)}
        for plot, layer, head in self._cells:
            first_column, last_row = head == 0, layer == layers[-1]
            plot.getAxis("left").setTicks([self._ticks["left"] if first_column else []])
            plot.getAxis("bottom").setTicks([self._ticks["bottom"] if last_row else []])

    def _on_mouse_moved(self, position) -> None:
        result = self.result
        if result is None:
            return
        T = len(result.tokens)
        for plot, layer, head in self._cells:
            box = plot.getViewBox()
            if not box.sceneBoundingRect().contains(position):
                continue
            point = box.mapSceneToView(position)
            key, query = int(math.floor(point.x())), int(math.floor(point.y()))
            if 0 <= query < T and 0 <= key < T:
                self.hover.setText(hover_text(result, layer, head, query, key))
            return
