"""The network spec form: a preset picker, the layers, loss, optimizer and training settings.

`SpecForm` edits a `NetSpec` and emits `sig_spec_changed` (debounced) whenever the user changes a field;
picking a preset fills every field at once and emits a single change.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QVBoxLayout,
    QWidget,
)

from explorer.core.mlp.spec import (
    ACTIVATION_LABELS,
    INITS,
    LOSSES,
    OPTIMIZERS,
    PRESETS,
    NetSpec,
    NetSpecError,
    parameter_count,
    preset_spec,
)
from explorer.ui.common import theme as themes
from explorer.ui.common.labels import RoomForLongest

CUSTOM = "custom"
CUSTOM_TEXT = "Your own network."
MAX_LAYERS = 6
MAX_WIDTH = 256

_LOSS_TIPS = {
    "bce": "Binary cross-entropy on probabilities: −[y·log p + (1−y)·log(1−p)]. Needs a Sigmoid output.",
    "bce-logits": "Binary cross-entropy on raw scores (logits): applies the sigmoid inside, more stable.",
    "mse": "Mean squared error: the mean of (output − target)².",
    "cross-entropy": "Softmax over one output per class, then −log of the true class's probability.",
}
_INIT_TIPS = {
    "default": "nn.Linear's own: weights and biases uniform in ±1/√fan_in.",
    "xavier": "Xavier (Glorot): weights uniform with variance 2/(fan_in + fan_out), biases 0. Keeps the "
              "spread of signals about the same through Tanh or Sigmoid layers.",
    "he": "He (Kaiming): weights normal with variance 2/fan_in, biases 0. Made for ReLU, which zeroes "
          "half of its inputs: the doubled variance keeps the signal from shrinking layer by layer.",
    "zeros": "Every weight and bias 0: all units of a layer compute the same value and get the same "
             "gradient, so they stay identical for ever (the symmetry problem). Shown to see it fail.",
}
_OPT_TIPS = {
    "sgd": "Stochastic gradient descent: w ← w − lr·grad (with momentum: a running sum of past grads).",
    "adam": "Adam: keeps running means of the gradient (m) and its square (v) and scales each step by them.",
    "adamw": "AdamW: Adam with weight decay applied directly to the weights, not through the gradient.",
}


class SpecForm(QWidget):
    """Edits a NetSpec; the preset combo (objectName networkPreset) fills all fields."""

    sig_spec_changed = Signal()
    """The spec in the form changed (debounced while typing)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._loading = False
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(250)
        self._debounce.timeout.connect(self.sig_spec_changed)

        self.preset = QComboBox()
        self.preset.setObjectName("networkPreset")
        for name, preset in PRESETS.items():
            self.preset.addItem(name, name)
            self.preset.setItemData(self.preset.count() - 1, preset.description, Qt.ToolTipRole)
        self.preset.addItem(CUSTOM, CUSTOM)
        self.preset.setToolTip("Ready-made networks. Editing any field below makes the spec 'custom'.")
        self.preset.currentIndexChanged.connect(self._on_preset)
        # as high as the longest description: switching to "custom" moves none of the fields below
        self.description = RoomForLongest([p.description for p in PRESETS.values()] + [CUSTOM_TEXT])
        self.description.setObjectName("presetDescription")

        self.input_size = self._spin(1, 512, "Input size: features per sample (2 for the toy data).")
        self.output_size = self._spin(
            1, 64, "Output size: 1 for a binary loss, one per class for cross-entropy."
        )
        self.output_act = self._activation_combo("Activation after the last Linear layer.")
        self.init = self._combo(INITS, _INIT_TIPS, "Initialisation: how the Linear layers' weights start. "
                                "Deep networks train only when the start keeps signals and gradients "
                                "from shrinking or growing layer by layer.")
        self.init.setObjectName("networkInit")
        self.layers = QTableWidget(0, 2)
        self.layers.setObjectName("layerTable")
        self.layers.setHorizontalHeaderLabels(["width", "activation"])
        self.layers.horizontalHeader().setSectionResizeMode(QHeaderView.Stretch)
        self.layers.verticalHeader().setDefaultSectionSize(26)
        self.layers.setToolTip(
            "Hidden layers: each is a Linear layer (weights and bias) followed by an activation. "
            "Without an activation, stacked Linear layers collapse into one linear map."
        )
        self.add_layer = QPushButton("+ layer")
        self.add_layer.setToolTip("Add a hidden layer")
        self.add_layer.clicked.connect(lambda: self._append_layer(8, "relu", emit=True))
        self.remove_layer = QPushButton("− layer")
        self.remove_layer.setToolTip("Remove the last hidden layer")
        self.remove_layer.clicked.connect(self._remove_layer)

        self.loss = self._combo(LOSSES, _LOSS_TIPS, "Loss: the number backward() differentiates.")
        self.optimizer = self._combo(
            OPTIMIZERS, _OPT_TIPS, "Optimizer: how step() turns gradients into updates."
        )
        self.lr = QDoubleSpinBox()
        self.lr.setDecimals(5)
        self.lr.setRange(0.00001, 10.0)
        self.lr.setSingleStep(0.001)
        self.lr.setToolTip("Learning rate: how far each step moves against the gradient.")
        self.lr.valueChanged.connect(self._edited)
        self.momentum = QDoubleSpinBox()
        self.momentum.setRange(0.0, 0.99)
        self.momentum.setSingleStep(0.1)
        self.momentum.setToolTip("SGD momentum μ: v ← μ·v + grad; 0 is plain SGD.")
        self.momentum.valueChanged.connect(self._edited)
        self.batch = self._spin(1, 512, "Batch size: samples averaged into one gradient.")
        self.seed = self._spin(0, 99999, "Seed for the initial weights (and the example batch).")

        self.count = QLabel()
        self.count.setObjectName("networkParamCount")
        self.count.setWordWrap(True)
        self.count.setToolTip("Every weight and bias the optimizer trains: in·out + out per Linear layer")
        self.error = QLabel()
        self.error.setObjectName("errorLabel")
        self.error.setStyleSheet(themes.label_style("errorLabel", themes.get_theme()))
        self.error.setWordWrap(True)
        self.error.hide()

        self._layout_form()
        self.set_preset("seed")

    # -- public API ------------------------------------------------------------------------------

    def spec(self) -> NetSpec:
        """The spec as the form shows it (not validated)."""
        widths, acts = [], []
        for row in range(self.layers.rowCount()):
            widths.append(self.layers.cellWidget(row, 0).value())
            acts.append(self.layers.cellWidget(row, 1).currentData())
        return NetSpec(
            input_size=self.input_size.value(),
            hidden=widths,
            activations=acts,
            output_size=self.output_size.value(),
            output_activation=self.output_act.currentData(),
            loss=self.loss.currentData(),
            optimizer=self.optimizer.currentData(),
            lr=self.lr.value(),
            momentum=self.momentum.value(),
            batch_size=self.batch.value(),
            seed=self.seed.value(),
            init=self.init.currentData(),
        )

    def preset_name(self) -> str:
        """The selected preset, or "custom" once a field was edited."""
        return self.preset.currentData()

    def set_preset(self, name: str) -> None:
        """Select a preset by name (fills the fields, emits one change)."""
        index = self.preset.findData(name)
        if index < 0:
            raise NetSpecError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
        if index == self.preset.currentIndex():
            self._on_preset(index)
        else:
            self.preset.setCurrentIndex(index)

    def set_spec(self, spec: NetSpec, preset: str = CUSTOM) -> None:
        """Show a spec in the fields without emitting per field."""
        self._loading = True
        try:
            self.input_size.setValue(spec.input_size)
            self.layers.setRowCount(0)
            for width, act in zip(spec.hidden, spec.activations, strict=False):
                self._append_layer(width, act)
            self.output_size.setValue(spec.output_size)
            _select(self.output_act, spec.output_activation)
            _select(self.loss, spec.loss)
            _select(self.optimizer, spec.optimizer)
            self.lr.setValue(spec.lr)
            self.momentum.setValue(spec.momentum)
            self.batch.setValue(spec.batch_size)
            self.seed.setValue(spec.seed)
            _select(self.init, spec.init)
            self.preset.blockSignals(True)
            self.preset.setCurrentIndex(max(0, self.preset.findData(preset)))
            self.preset.blockSignals(False)
        finally:
            self._loading = False
        self._refresh()

    def show_error(self, message: str | None) -> None:
        """Show (or clear) a problem with the spec under the form."""
        self.error.setVisible(bool(message))
        self.error.setText(message or "")

    # -- private -----------------------------------------------------------------------------------

    def _layout_form(self) -> None:
        net = QGroupBox("Network")
        form = QFormLayout(net)
        form.addRow("Preset", self.preset)
        form.addRow(self.description)
        form.addRow("Inputs", self.input_size)
        hidden = QLabel("Hidden layers")
        hidden.setToolTip(self.layers.toolTip())
        form.addRow(hidden)
        form.addRow(self.layers)
        buttons = QHBoxLayout()
        buttons.addWidget(self.add_layer)
        buttons.addWidget(self.remove_layer)
        form.addRow(buttons)
        form.addRow("Outputs", self.output_size)
        form.addRow("Output activation", self.output_act)
        form.addRow("Initialisation", self.init)
        training = QGroupBox("Training")
        tform = QFormLayout(training)
        tform.addRow("Loss", self.loss)
        tform.addRow("Optimizer", self.optimizer)
        tform.addRow("Learning rate", self.lr)
        tform.addRow("Momentum", self.momentum)
        tform.addRow("Batch size", self.batch)
        tform.addRow("Seed", self.seed)
        for layout in (form, tform):  # a row's label explains its field like the field does
            for field in (self.preset, self.input_size, self.output_size, self.output_act, self.init,
                          self.loss, self.optimizer, self.lr, self.momentum, self.batch, self.seed):
                label = layout.labelForField(field)
                if label is not None:
                    label.setToolTip(field.toolTip())
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(net)
        box.addWidget(training)
        box.addWidget(self.count)
        box.addWidget(self.error)
        box.addStretch(1)

    def _spin(self, lo: int, hi: int, tip: str) -> QSpinBox:
        spin = QSpinBox()
        spin.setRange(lo, hi)
        spin.setToolTip(tip)
        spin.valueChanged.connect(self._edited)
        return spin

    def _combo(self, items: dict[str, str], tips: dict[str, str], tip: str) -> QComboBox:
        combo = QComboBox()
        for key, label in items.items():
            combo.addItem(label, key)
            combo.setItemData(combo.count() - 1, tips.get(key, ""), Qt.ToolTipRole)
        combo.setToolTip(tip)
        combo.currentIndexChanged.connect(self._edited)
        return combo

    def _activation_combo(self, tip: str) -> QComboBox:
        return self._combo(ACTIVATION_LABELS, {}, tip)

    def _append_layer(self, width: int, act: str, emit: bool = False) -> None:
        if self.layers.rowCount() >= MAX_LAYERS:
            self.show_error(f"at most {MAX_LAYERS} hidden layers here: keep the graph readable")
            return
        # Fill the widgets before their row exists: setting a value emits, and the slot reads every
        # row's cell widgets (a row without them yet raised AttributeError on each "+ layer").
        spin = self._spin(1, MAX_WIDTH, "Units in this hidden layer")
        spin.setValue(width)
        combo = self._activation_combo("Activation after this layer's Linear")
        _select(combo, act)
        row = self.layers.rowCount()
        self.layers.insertRow(row)
        self.layers.setCellWidget(row, 0, spin)
        self.layers.setCellWidget(row, 1, combo)
        self.layers.setFixedHeight(28 + 26 * max(1, self.layers.rowCount()))
        if emit:
            self._edited()

    def _remove_layer(self) -> None:
        if self.layers.rowCount() > 0:
            self.layers.removeRow(self.layers.rowCount() - 1)
            self.layers.setFixedHeight(28 + 26 * max(1, self.layers.rowCount()))
            self._edited()

    def _on_preset(self, index: int) -> None:
        name = self.preset.itemData(index)
        if name == CUSTOM:
            self._refresh()
            return
        self.set_spec(preset_spec(name), preset=name)
        self._debounce.stop()
        self.sig_spec_changed.emit()

    def _edited(self, *_args) -> None:
        if self._loading:
            return
        if self.preset.currentData() != CUSTOM:
            self.preset.blockSignals(True)
            self.preset.setCurrentIndex(self.preset.findData(CUSTOM))
            self.preset.blockSignals(False)
        self._refresh()
        self._debounce.start()

    def _refresh(self) -> None:
        name = self.preset.currentData()
        self.description.setText(PRESETS[name].description if name in PRESETS else CUSTOM_TEXT)
        spec = self.spec()
        self.momentum.setEnabled(spec.optimizer == "sgd")
        self.count.setText(f"<b>{parameter_count(spec):,}</b> trainable parameters (weights + biases)")


def _select(combo: QComboBox, key: str) -> None:
    index = combo.findData(key)
    if index >= 0:
        combo.setCurrentIndex(index)
