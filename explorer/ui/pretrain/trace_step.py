""""Trace one step": one training step of the current GPT, recorded by the tracer, on the graph canvas.

The model is the selected (or latest) run's checkpoint, or an untrained model built from the form.
Tracing runs in a background thread on a short batch (one sequence of a few tokens), so the graph
stays readable: blocks are collapsed by module, repeated blocks roll up as "× N", and a double-click
expands a module down to its ops. The player replays forward, then backward in autograd's order.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from explorer.ui.common import actions
from explorer.ui.common.labels import ElidedLabel
from explorer.ui.common.worker import Worker

# Above this, building and tracing the model would take much of this machine's memory for little
# more insight than the same structure at tiny size.
MAX_TRACE_PARAMETERS = 60_000_000


def trace_one_step(source: dict, n_tokens: int = 8, checkpoint_blocks: bool | list[int] = False):
    """Trace forward + loss + backward of one short batch; returns (Trace, a one-line description).

    `checkpoint_blocks` (True: all, or a list of block indices): those blocks keep only their input
    and recompute their forward in backward. The trace's `memory_text` says what each block kept
    (`memory_summary`)."""
    import torch

    from explorer.core.autograd.trace import trace
    from explorer.core.gpt import data
    from explorer.core.gpt.model import GPT, GPTConfig

    if source.get("checkpoint"):
        from explorer.core.gpt.checkpoint import load_model

        model, tokenizer, ckpt = load_model(source["checkpoint"], "cpu")
        corpus_path = (ckpt.settings or {}).get("corpus_path")
        what = f"{source.get('name', 'the run')} at step {ckpt.step}"
    else:
        if not source.get("config"):
            raise ValueError("fix the form first: the model configuration is not valid")
        corpus_path = source.get("corpus")
        text = data.load_corpus(corpus_path) if corpus_path else data.default_corpus()
        settings = source.get("settings") or {}
        config = GPTConfig(**source["config"])
        # The form's vocab_size is already the tokenizer's (char) or its upper bound (BPE): refuse a
        # model too big before spending seconds on learning a BPE.
        _check_traceable(config)
        tokenizer = data.train_tokenizer(settings.get("tokenizer", "char"), text, config.vocab_size)
        config = config.replace(vocab_size=tokenizer.vocab_size)
        _check_traceable(config)
        torch.manual_seed(0)
        model = GPT(config)
        what = "an untrained model with the form's configuration"
    text = data.load_corpus(corpus_path) if corpus_path else data.default_corpus()
    start = len(text) // 3
    ids = tokenizer.encode(text[start:start + 400])
    T = max(2, min(n_tokens, model.config.context_length))
    if len(ids) < T + 1:
        raise ValueError("the corpus is too short to make a batch for tracing")
    x = torch.tensor([ids[:T]], dtype=torch.long)  # (1, T)
    y = torch.tensor([ids[1:T + 1]], dtype=torch.long)  # (1, T): each next token
    model.train()
    model.zero_grad(set_to_none=True)
    if isinstance(checkpoint_blocks, list) and any(not 0 <= i < len(model.blocks) for i in checkpoint_blocks):
        raise ValueError(f"the model has blocks 0 to {len(model.blocks) - 1}: no block "
                         f"{max(checkpoint_blocks) if checkpoint_blocks else '?'} to checkpoint")
    model.set_checkpointing(checkpoint_blocks)

    def step():
        loss = model.loss(x, y)
        return loss, {"loss": loss}

    result = trace(step, max_snapshot_elems=2048)
    shown = tokenizer.decode(ids[:T]).replace("\n", "↵")
    result.memory_text = memory_summary(result, model)
    return result, f"{what}: one sequence of {T} tokens ({shown!r}) → next-token loss → backward"


def memory_summary(trace, model) -> str:
    """What each block kept for backward and, for checkpointed blocks, when backward recomputed it."""
    from explorer.core.autograd.saved import recompute_steps, saved_by_module
    from explorer.core.autograd.timeline import Timeline
    from explorer.core.numbers import format_bytes

    per_module = saved_by_module(trace)
    recomputed_at = recompute_steps(Timeline(trace))
    parts = []
    for i, block in enumerate(model.blocks):
        path = f"blocks.{i}"
        text = f"{path} {format_bytes(per_module.get(path, 0))}"
        if block.checkpointed:
            when = f" at step {recomputed_at[path]}" if path in recomputed_at else ""
            text += f" (forward recomputed {block.recomputations}× in backward{when})"
        parts.append(text)
    memory = trace.saved_memory
    total = format_bytes(memory.activations) if memory is not None else "?"
    return f"Saved for backward: {total} in all; per block: " + ", ".join(parts)


def _check_traceable(config) -> None:
    from explorer.core.gpt.model import count_parameters

    total = count_parameters(config)["total"]
    if total > MAX_TRACE_PARAMETERS:
        raise ValueError(f"{total:,} parameters is too big to trace here: the tiny preset has the same "
                         "structure with fewer and narrower blocks")


class TraceTab(QWidget):
    """Button, graph canvas and player for one traced training step (objectName pretrainTrace)."""

    sig_traced = Signal()
    """A new trace is on the canvas."""

    def __init__(self, panel) -> None:
        super().__init__()
        self.setObjectName("pretrainTrace")
        self._panel = panel
        self._job = Worker(self)
        self._job.sig_done.connect(self._on_done)
        self._job.sig_failed.connect(lambda message: self.status.setText(f"Could not trace: {message}"))
        self._job.sig_busy_changed.connect(lambda busy: busy or self._on_job_finished())
        self.trace = None
        self.button = QPushButton("Trace one step")
        self.button.setObjectName("traceStepButton")
        actions.describe_button(self.button, "pretrain.trace_step", with_shortcut=True)
        self.button.clicked.connect(self.trace_step)
        self.tokens = QSpinBox()
        self.tokens.setRange(2, 32)
        self.tokens.setValue(8)
        self.tokens.setToolTip("Tokens in the traced sequence: every op works on all of them at once")
        self.checkpoint = QCheckBox("checkpoint blocks")
        self.checkpoint.setObjectName("traceCheckpointBlocks")
        self.checkpoint.setToolTip("Activation checkpointing: each block keeps only its input for backward "
                                   "and runs its forward again when backward reaches it. Turn on the View "
                                   "menu's memory overlay to see the saved bytes fall and the blocks keep "
                                   "nothing.")
        self.checkpoint_which = QLineEdit()
        self.checkpoint_which.setObjectName("traceCheckpointWhich")
        self.checkpoint_which.setPlaceholderText("all blocks")
        self.checkpoint_which.setMaximumWidth(110)
        self.checkpoint_which.setToolTip("Which blocks to checkpoint, by index (\"0, 2\"); empty: all")
        self.checkpoint_which.setEnabled(False)
        self.checkpoint.toggled.connect(self.checkpoint_which.setEnabled)
        # Fixed heights with an ellipsis (the whole text in the tooltip): nothing below moves.
        self.memory_label = ElidedLabel("", lines=2)
        self.memory_label.setObjectName("traceMemory")
        self.status = ElidedLabel("Blocks are collapsed by module; double-click a module to expand it to its "
                                  "ops.", lines=2)
        self.status.setObjectName("traceStatus")
        row = QHBoxLayout()
        row.addWidget(self.button)
        row.addWidget(QLabel("tokens"))
        row.addWidget(self.tokens)
        row.addWidget(self.checkpoint)
        row.addWidget(self.checkpoint_which)
        row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.status)
        layout.addWidget(self.memory_label)
        from explorer.ui.graph.inspector import Inspector
        from explorer.ui.graph.player import Player
        from explorer.ui.graph.view import GraphView

        self.view = GraphView()
        self.inspector = Inspector()  # the same inspector as every graph's
        self.inspector.setObjectName("traceInspector")
        self.inspector.follow(self.view)
        self.player = Player()
        self.player.sig_step_changed.connect(self._on_step)
        layout.addWidget(self.player)
        split = QSplitter(Qt.Horizontal)
        split.addWidget(self.view)
        split.addWidget(self.inspector)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 1)
        split.setSizes([1000, 380])  # the graph first: the inspector's size hint would take most
        layout.addWidget(split, 1)

    def _on_step(self, k: int) -> None:
        self.view.set_step(k)
        self.inspector.show_selection(self.view)

    def set_theme(self, theme: dict[str, str]) -> None:
        """Recolour the graph canvas."""
        self.view.set_theme(theme)

    def trace_step(self) -> None:
        """Trace one step of the current model in a background thread."""
        if self._job.is_busy():
            return
        self.button.setEnabled(False)
        if self._panel.with_fresh_checkpoint(self._start):
            self.status.setText("Asking the training run for its current weights…")

    def _start(self) -> None:
        self.button.setEnabled(True)
        if self._job.is_busy():
            return
        source = self._panel.model_source()
        n_tokens = self.tokens.value()
        checkpointed = self.checkpoint_choice()
        if checkpointed is None:
            self.status.setText("Which blocks to checkpoint: whole numbers separated by commas (\"0, 2\")")
            return
        self.status.setText("Tracing one training step…")
        self.button.setEnabled(False)
        self._job.submit(lambda _job: trace_one_step(source, n_tokens, checkpointed))

    def checkpoint_choice(self) -> bool | list[int] | None:
        """False, True (every block) or the block indices typed; None when the text is not indices."""
        if not self.checkpoint.isChecked():
            return False
        text = self.checkpoint_which.text().replace(",", " ").split()
        if not text:
            return True
        return [int(t) for t in text] if all(t.isdigit() and len(t) < 4 for t in text) else None

    def shutdown(self) -> None:
        """Wait for a running trace."""
        self._job.shutdown()

    def _on_job_finished(self) -> None:
        self.button.setEnabled(True)

    def _on_done(self, result) -> None:
        trace, description = result
        self.trace = trace
        try:
            self.view.set_trace(trace)
            self.player.set_length(self.view.step_count)
        except Exception as exc:  # noqa: BLE001 - a drawing failure must not take the panel down
            self.status.setText(f"Could not draw the trace: {exc}")
            return
        self.status.setText(f"{description}. {len(trace.nodes)} nodes, {len(trace.backward_order)} backward "
                            "events. Modules are collapsed (repeated blocks as × N): double-click one to "
                            "expand it; use the player to replay forward, then backward.")
        self.memory_label.setText(getattr(trace, "memory_text", ""))
        self.sig_traced.emit()
