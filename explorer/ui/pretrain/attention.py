"""Attention maps of a trained run: for a prompt, one heatmap per layer and head.

The checkpoint the training process wrote is loaded here, in the UI process, and the maps are
computed in a background thread; only the finished numpy array reaches the GUI thread.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QLineEdit, QPushButton, QVBoxLayout, QWidget

from explorer.ui.common.worker import Worker

MAX_PROMPT_TOKENS = 32  # more than this and the per-token labels become unreadable
MAX_CELLS_AT_ONCE = 48  # above this many layer x head maps, one layer is shown at a time
EXPLANATION = ("Each square is one head: row = the token that is looking (query), column = the token it "
               "looks at (key); a row's colours sum to 1 (softmax). The upper-right triangle stays empty: "
               "the causal mask forbids looking at future tokens.")


@dataclass
class AttentionResult:
    """Attention weights (n_layers, n_heads, T, T), the prompt's tokens as text, the checkpoint step."""

    maps: np.ndarray
    tokens: list[str]
    step: int
    name: str


def compute_attention(checkpoint: str, prompt: str, name: str = "") -> AttentionResult:
    """Load a checkpoint on the CPU and run the prompt through it, keeping every attention pattern."""
    import torch

    from explorer.core.gpt.checkpoint import load_model

    model, tokenizer, ckpt = load_model(checkpoint, "cpu")
    ids = tokenizer.encode(prompt)
    if not ids:
        raise ValueError("none of the prompt's characters occur in this model's corpus: type other text")
    ids = ids[-min(MAX_PROMPT_TOKENS, model.config.context_length):]
    maps = model.attention_maps(torch.tensor(ids, dtype=torch.long)).numpy()
    tokens = [tokenizer.decode([i]) for i in ids]
    return AttentionResult(maps, tokens, int(ckpt.step), name)


def _token_label(token: str) -> str:
    return {"\n": "↵", " ": "␣", "\t": "⇥"}.get(token, token.replace("\n", "↵"))


class AttentionTab(QWidget):
    """Prompt, Show button and the grid of heatmaps (objectName pretrainAttention)."""

    sig_shown = Signal()
    """New maps are on screen."""

    def __init__(self, panel) -> None:
        super().__init__()
        self.setObjectName("pretrainAttention")
        self._panel = panel
        self._job = Worker(self)
        self._job.sig_done.connect(self._on_done)
        self._job.sig_failed.connect(self._on_failed)
        self._job.sig_busy_changed.connect(lambda busy: busy or self._on_job_finished())
        self.result: AttentionResult | None = None
        self.prompt = QLineEdit("The quick brown fox jumps over the lazy dog.")
        self.prompt.setObjectName("attentionPrompt")
        self.prompt.setToolTip("Text to feed the trained model (at most the context length, and "
                               f"{MAX_PROMPT_TOKENS} tokens here)")
        self.prompt.returnPressed.connect(self.show_attention)
        self.button = QPushButton("Show attention")
        self.button.setObjectName("attentionButton")
        self.button.setToolTip("Run the prompt through the selected (or latest) run's checkpoint and draw "
                               "its attention (Enter)")
        self.button.clicked.connect(self.show_attention)
        self.layer = QComboBox()
        self.layer.setToolTip("Which layer's heads to show")
        self.layer.currentIndexChanged.connect(self._draw)
        self.status = QLabel("Train (or stop) a run, then press Show attention.")
        self.status.setObjectName("attentionStatus")
        self.status.setWordWrap(True)
        explanation = QLabel(EXPLANATION)
        explanation.setWordWrap(True)
        explanation.setStyleSheet("color:#6b7280;")
        self.canvas = pg.GraphicsLayoutWidget()
        self.canvas.setBackground("w")
        self.canvas.setToolTip(EXPLANATION)
        row = QHBoxLayout()
        row.addWidget(QLabel("Prompt"))
        row.addWidget(self.prompt, 1)
        row.addWidget(self.button)
        row.addWidget(QLabel("Layer"))
        row.addWidget(self.layer)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.status)
        layout.addWidget(explanation)
        layout.addWidget(self.canvas, 1)

    def is_busy(self) -> bool:
        """True while maps are being computed (the button is disabled meanwhile)."""
        return self._job.is_busy()

    def set_theme(self, theme: dict[str, str]) -> None:
        """Recolour the heatmap canvas."""
        self.canvas.setBackground(theme["panel"])

    def show_attention(self) -> None:
        """Compute the maps for the prompt in a background thread (a running run saves its weights first)."""
        if self.is_busy():
            return
        self.button.setEnabled(False)
        if self._panel.with_fresh_checkpoint(self._start):
            self.status.setText("Asking the training run for its current weights…")

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
        self._draw()
        self.sig_shown.emit()

    def _draw(self, *_: object) -> None:
        result = self.result
        self.canvas.clear()
        if result is None:
            return
        text = self.layer.currentText()
        if text.startswith("layer "):
            layers = [int(text.split()[-1])]
        else:
            layers = list(range(result.maps.shape[0]))
        n_heads = result.maps.shape[1]
        T = len(result.tokens)
        labels = [(i, _token_label(tok)) for i, tok in enumerate(result.tokens)]
        cmap = pg.colormap.get("viridis")
        for r, layer in enumerate(layers):
            for h in range(n_heads):
                plot = self.canvas.addPlot(row=r, col=h)
                plot.setTitle(f"layer {layer} · head {h}", size="8pt")
                image = pg.ImageItem(result.maps[layer, h], axisOrder="row-major")
                image.setColorMap(cmap)
                image.setLevels((0.0, 1.0))
                plot.addItem(image)
                plot.invertY(True)
                plot.setMouseEnabled(False, False)
                plot.hideButtons()
                plot.setRange(xRange=(0, T), yRange=(0, T), padding=0)
                small = T <= 20
                for side, show in (("left", h == 0), ("bottom", r == len(layers) - 1)):
                    axis = plot.getAxis(side)
                    if not small:
                        plot.hideAxis(side)
                    else:
                        # Every cell keeps its axes (so all heatmaps get the same size); only the
                        # first column and the last row name the tokens.
                        axis.setTicks([[(i + 0.5, label) for i, label in labels] if show else []])
