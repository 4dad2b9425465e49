"""What a configuration costs, beside the form: parameter count, memory against the device, warnings.

Updated on every keystroke from the form's dicts; the figures come from explorer.core.gpt.spec (through
explorer.core.gpt.budget), so the GPT-2 preset reads 163,009,536 here as it does everywhere. The count
and the estimate need no torch; the device's memory, the fit warning and the traced check do
(`with_device=False` leaves them out while torch loads).
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QProgressBar, QVBoxLayout, QWidget

from explorer.core.gpt import budget as info
from explorer.ui.common.worker import Worker

MODEL_KEYS = {"vocab_size", "context_length", "emb_dim", "hidden_dim", "n_layers", "n_heads", "drop_rate",
              "config"}
WHERE = {"cpu": "RAM", "cuda": "GPU memory", "mps": "unified memory"}
# Up to these sizes the activation check traces a forward with the CPU's real kernels; beyond, shapes
# only on the meta device (no memory, no compute).
REAL_TRACE_ACTIVATIONS = 64 * 2**20
REAL_TRACE_PARAMETERS = 20_000_000


class ModelEstimates(QWidget):
    """Parameter count (objectName paramCount), parts, memory bar and the fit warning."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.param_count = QLabel()
        self.param_count.setObjectName("paramCount")
        self.param_count.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.param_count.setToolTip("Parameters are the learnable weights and biases: the numbers "
                                    "training adjusts to lower the loss. Counted exactly from the config.")
        self.param_parts = QLabel()
        self.param_parts.setStyleSheet("color:#6b7280; font-size:11px;")
        self.param_parts.setWordWrap(True)
        self.param_parts.setToolTip("Where the parameters are: token and position embeddings, attention "
                                    "(query/key/value and output projections), the MLPs, LayerNorms, and "
                                    "the output head (zero when tied to the token embedding).")
        self.memory = QLabel()
        self.memory.setWordWrap(True)
        self.memory.setToolTip("Memory for one training step in float32: weights, their gradients, AdamW's "
                               "two moment estimates (4 numbers per parameter in all) and the activations "
                               "kept for backward, which grow with batch × context.")
        self.memory_bar = QProgressBar()
        self.memory_bar.setRange(0, 1000)
        self.memory_bar.setTextVisible(False)
        self.memory_bar.setFixedHeight(8)
        self.memory_bar.setToolTip(self.memory.toolTip())
        self.activation_check = QLabel()
        self.activation_check.setObjectName("activationCheck")
        self.activation_check.setWordWrap(True)
        self.activation_check.setStyleSheet("color:#6b7280; font-size:11px;")
        self.activation_check.setToolTip(
            "The activation estimate is a formula; the tracer checks it by running one training forward "
            "of this configuration and batch and adding up what torch's saved-tensor hooks see autograd "
            "keep for backward (the weights left out).")
        self._measure_job = Worker(self)
        self._measure_job.sig_done.connect(self._on_measured)
        self._measure_job.sig_failed.connect(lambda m: self.activation_check.setText(f"not traced: {m}"))
        self._measure_key = None
        self._estimate = 0
        self.fit_warning = QLabel()
        self.fit_warning.setObjectName("pretrainFitWarning")
        self.fit_warning.setWordWrap(True)
        self.fit_warning.hide()
        self.refuse = False
        """True when the configuration cannot train on this machine (Train is disabled)."""
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for widget in (self.param_count, self.param_parts, self.memory, self.memory_bar,
                       self.activation_check, self.fit_warning):
            layout.addWidget(widget)

    def set_warning_style(self, style: str) -> None:
        """The stylesheet of the warning line (the panel's theme colours)."""
        self.fit_warning.setStyleSheet(style + "padding:4px; border-radius:4px;")

    def update_from(self, config: dict[str, Any], settings: dict[str, Any], messages: dict[str, str],
                    vocab_pending: bool = False, with_device: bool = True) -> bool:
        """Refresh every figure from the form's dicts and messages; returns `refuse`.

        `vocab_pending`: the tokenizer's vocabulary is still being counted, so the figures are provisional.
        `with_device` False (torch is still loading): the count and the memory estimate only; the device's
        memory, the fit warning and the traced check come with the next call with `with_device` True.
        """
        if MODEL_KEYS & set(messages):
            self.param_count.setText("Parameters: –")
            self.param_parts.setText("Fix the marked fields to see the count.")
            self.memory.setText("")
            self.memory_bar.setValue(0)
            self.fit_warning.hide()
            return self.refuse
        counts = info.parameter_counts(config)
        self.param_count.setText(f"<span style='font-size:15px'><b>{counts['total']:,}</b> parameters</span>")
        parts = "  ·  ".join(f"{name} {counts[name]:,}" for name in
                             ("embeddings", "attention", "mlp", "norms", "head"))
        if vocab_pending:
            parts += "  (provisional: the tokenizer's vocabulary is still being counted)"
        self.param_parts.setText(parts)
        batch = settings.get("batch_size") if "batch_size" not in messages else None
        checkpointed = bool(settings.get("checkpoint_blocks"))
        need = info.memory_needed(config, batch or 1, checkpoint_blocks=checkpointed)
        if not with_device:
            self._show_memory(need, None, "")
            self.activation_check.setText("Activations: checked by a traced forward once PyTorch is in")
            self.fit_warning.hide()
            self.refuse = False
            return self.refuse
        self._check_activations(config, batch or 1, checkpointed, need["activations"], counts["total"])
        device, capacity, problem = info.device_memory(settings.get("device", "auto"))
        self._show_memory(need, capacity, WHERE.get(device, device))
        warning, self.refuse = problem, problem is not None
        if warning is None and batch:
            warning, self.refuse = info.training_warning(config, batch, settings.get("device", "auto"),
                                                         settings.get("steps"))
        self.fit_warning.setText(f"⚠ {warning}" if warning else "")
        self.fit_warning.setVisible(bool(warning))
        return self.refuse

    def _show_memory(self, need: dict[str, int], capacity: int | None, where: str) -> None:
        total = info.format_bytes(need["total"])
        if not capacity:
            self.memory.setText(f"Memory for one training step ≈ {total}")
            self.memory_bar.setValue(0)
            return
        share = need["total"] / capacity
        parts = " · ".join(f"{label} {info.format_bytes(need[key])}" for label, key in
                           (("weights", "weights"), ("grads", "gradients"), ("AdamW", "optimizer"),
                            ("activations", "activations")))
        self.memory.setText(f"Memory for one training step ≈ <b>{total}</b> of {info.format_bytes(capacity)} "
                            f"{where} ({share:.1%})<br>"
                            f"<span style='color:#6b7280; font-size:11px'>{parts}</span>")
        self.memory_bar.setValue(int(min(1.0, share) * 1000))

    def _check_activations(self, config: dict[str, Any], batch: int, checkpointed: bool, estimate: int,
                           parameters: int) -> None:
        """Trace one forward of this configuration in the background and show it beside the estimate."""
        real = estimate <= REAL_TRACE_ACTIVATIONS and parameters <= REAL_TRACE_PARAMETERS
        key = (tuple(sorted(config.items())), batch, checkpointed, real)
        self._estimate = estimate
        if key == self._measure_key:
            return
        self._measure_key = key
        self.activation_check.setText(f"Activations: estimate {info.format_bytes(estimate)} · tracing…")
        cfg = info.make_config(config)
        device = "cpu" if real else "meta"
        self._measure_job.submit(lambda _job: (key, _measured(cfg, batch, checkpointed, device)))

    def _on_measured(self, result) -> None:
        key, measured = result
        if key != self._measure_key:
            return  # a newer configuration is being traced
        where = ("one forward with this machine's kernels" if key[3] else
                 "one forward on the meta device (shapes only: its attention keeps the T×T matrix that "
                 "fused kernels do not)")
        ratio = f" ({self._estimate / measured - 1:+.0%})" if measured else ""
        self.activation_check.setText(
            f"Activations kept for backward: estimate {info.format_bytes(self._estimate)} · traced "
            f"{info.format_bytes(measured)}{ratio}, {where}"
            + (" · blocks checkpointed" if key[2] else ""))

    def shutdown(self) -> None:
        """Wait for a trace still running (the window is closing)."""
        self._measure_job.shutdown()


def _measured(cfg, batch: int, checkpointed: bool, device: str) -> int:
    """The traced activation bytes of one training forward (on the Worker: it builds the model in torch)."""
    from explorer.core.gpt.model import measured_activation_bytes

    return measured_activation_bytes(cfg, batch, checkpoint_blocks=checkpointed, device=device)
