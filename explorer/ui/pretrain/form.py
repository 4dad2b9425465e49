"""The hyperparameter form of the pretraining workspace: GPT config + training settings.

Every field is a line edit checked as the user types: a bad field gets a red frame and its message
right under it. Tooltips explain each concept in the words of the course notes. The form knows
nothing about training; it emits `sig_changed` and hands out plain dicts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from explorer.core.gpt import budget as info
from explorer.core.gpt import data
from explorer.core.gpt.spec import CPU_BF16_MIN_WIDTH
from explorer.ui.common import loading
from explorer.ui.common.worker import Worker


@dataclass(frozen=True)
class FieldSpec:
    """One text field: its key in the config/settings dict, label, type, bounds and tooltip."""

    key: str
    label: str
    kind: type  # int or float
    tip: str
    minimum: float | None = 1
    maximum: float | None = None
    optional: bool = False  # empty text means "the default" (shown as placeholder)


MODEL_FIELDS = [
    FieldSpec("vocab_size", "Vocabulary size", int,
              "How many different tokens the model can read and predict. Every token gets its own row "
              "in the embedding table and its own output score, so this size multiplies the embedding "
              "dimension in the parameter count. GPT-2 uses 50,257 BPE tokens; with the character "
              "tokenizer the corpus fixes it (one token per distinct character).", 2),
    FieldSpec("context_length", "Context length", int,
              "The maximum length of each sequence used to pre-train the LLM: how many tokens the model "
              "can look back at when predicting the next one. Attention cost grows with its square. "
              "GPT-2: 1024.", 1),
    FieldSpec("emb_dim", "Embedding dimension", int,
              "The size of the vector used to represent each token. Every layer reads and writes "
              "vectors of this size, so most parameter counts grow with its square. GPT-2: 768. "
              "Must be divisible by the number of heads.", 1),
    FieldSpec("hidden_dim", "Hidden dimension", int,
              "The size of the hidden layer inside each block's feed-forward network (MLP): the "
              "vector is widened to this size, passed through GELU, and projected back. Leave empty "
              "for the usual 4 × embedding dimension (GPT-2: 3072).", 1, optional=True),
    FieldSpec("n_layers", "Number of layers", int,
              "How many transformer blocks (attention + MLP) are stacked: the depth of the model. "
              "LLMs usually use tens of layers; GPT-2 small has 12.", 1),
    FieldSpec("n_heads", "Attention heads", int,
              "How many separate attention mechanisms run side by side in each layer; each looks at "
              "the context through its own slice of emb_dim / heads numbers. GPT-2: 12.", 1),
    FieldSpec("drop_rate", "Dropout", float,
              "The fraction of activations set to 0 at random during training, to prevent "
              "overfitting (never at evaluation). LLMs usually use between 0 and 20% (0–0.2); "
              "GPT-2 used 0.1. Tiny models trained briefly learn faster with 0.", 0.0, 0.999),
]

TRAIN_FIELDS = [
    FieldSpec("steps", "Steps", int,
              "How many optimizer updates to make. Each step shows the model one batch, computes the "
              "loss, back-propagates the gradients and lets AdamW move every parameter a little.", 1),
    FieldSpec("batch_size", "Batch size", int,
              "How many sequences of context-length tokens go into one step. Bigger batches give "
              "smoother gradients but need more memory (activations grow with batch × context).", 1),
    FieldSpec("lr", "Learning rate", float,
              "The peak step size of the optimizer (AdamW): how far the parameters move along the "
              "negative gradient each step. Too high and the loss explodes (NaN); too low and "
              "nothing is learned. Small models like 1e-3.", 1e-9, 10.0),
    FieldSpec("warmup_steps", "Warm-up steps", int,
              "The learning rate rises linearly from 0 to its peak over these first steps, then "
              "decays along a cosine: early gradients are large and noisy, so start gently.", 0),
    FieldSpec("eval_every", "Eval interval", int,
              "Every this many steps the validation loss is measured on text the model never trains "
              "on. If train loss keeps falling while validation loss rises, the model is "
              "memorising (overfitting).", 1),
    FieldSpec("sample_every", "Sample every", int,
              "Every this many steps the model writes a short text by itself (shown under Samples): "
              "watch it go from random characters to words. 0: never.", 0),
    FieldSpec("checkpoint_every", "Checkpoint every", int,
              "Every this many steps the training process saves the model, its optimizer and its place in "
              "the data to the run's checkpoint file (written beside it, then renamed over it, so a "
              "half-written file never replaces a good one). If the app or the computer stops mid-run, "
              "Continue resumes from the last of these saves: at most this many steps are lost. Saving "
              "a big model takes a moment; 0 saves only when the run ends.", 0),
    FieldSpec("hist_every", "Histograms every", int,
              "Every this many steps (and at the first) the run records a histogram of each transformer "
              "block's output values (the residual stream) and of its parameters' gradients, shown under "
              "Histograms with a step slider: watch activations grow or collapse and gradients narrow. "
              "Recording costs one extra forward pass on those steps; 0: never.", 0),
    FieldSpec("seed", "Seed", int,
              "The random seed: the same seed, config and corpus give the same run on the CPU, so "
              "two runs differ only by what you changed.", 0),
]

DEVICES = ("auto", "cpu", "cuda", "mps")
DEVICE_TIP = ("Where the arithmetic runs. auto picks a CUDA GPU, then Apple's MPS, then the CPU. "
              "GPUs are tens of times faster for anything but the tiniest model. Where it is faster (GPUs "
              f"with bf16, and CPUs where a quick measurement at the start finds bf16 faster, for models at "
              f"least {CPU_BF16_MIN_WIDTH} wide) the matrix "
              "products run in bf16 while weights, optimizer and loss stay float32: mixed precision, "
              "named when a run starts.")
GPUS_TIP = ("Train on this many GPUs at once (data parallel, through torchrun): each GPU runs a copy of "
            "the model on its own batch-size rows, the gradients are averaged across GPUs, and every copy "
            "takes the same step. One step then reads GPUs × batch size sequences.")
TIE_TIP = ("Tie the output head to the token embedding: the same matrix turns tokens into vectors "
           "and vectors back into token scores. GPT-2 did this: 124,412,160 parameters instead of "
           "163,009,536.")
QKV_TIP = ("Give the query, key and value projections of attention a bias vector. GPT-2's original "
           "weights have one; most modern LLMs (and the seed's config) leave it out.")
CHECKPOINT_TIP = ("Activation checkpointing: each transformer block keeps only its input for backward and "
                  "runs its forward again during backward. Far less memory for activations, about a "
                  "third more compute per step (see the time per step and peak memory while it trains).")
CORPUS_TIP = ("The text to pretrain on. Empty: the built-in corpus (English text that ships with "
              "Python, no download). Or any UTF-8 text file; its last tenth is held out as "
              "validation text.")

TOKENIZER_TIP = ("How text becomes tokens. char: one token per distinct character of the corpus, so the "
                 "corpus fixes the vocabulary size (the field shows it). bpe: byte-level byte-pair encoding "
                 "learned on the corpus, as in GPT-2: frequent pieces of words become single tokens and the "
                 "vocabulary size is yours to choose.")
BYTE_ALPHABET = 256  # a byte-level BPE starts from the 256 bytes: its vocabulary must be larger
DEFAULT_BPE_VOCAB = 1024
SYNC_COUNT_BYTES = 2_000_000  # corpus files up to this size are counted at once, bigger ones off-thread
HINT_STYLE = "color: #6b7280; font-size: 11px;"

INVALID_STYLE = ("QLineEdit[invalid=\"true\"] { border: 1.5px solid #dc2626; background: #fef2f2; }"
                 # A value the form fills in itself (the char vocabulary) must not look like an input.
                 "QLineEdit:read-only { background: transparent; border-style: dashed; }")


class HyperparameterForm(QWidget):
    """Presets, model and training fields, corpus chooser; validated on every keystroke."""

    sig_changed = Signal()
    """Any field changed (check `is_valid()`, then read `config_dict()` / `settings_dict()`)."""
    sig_vocab_counted = Signal(int)
    """The character tokenizer's vocabulary of the chosen corpus is known (the field shows it now)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        # INVALID_STYLE sits on a field once it was invalid, not on the form: a form-wide sheet would
        # re-polish every widget of the form whenever the theme re-applies the sheets (common/theme.py)
        self._edits: dict[str, QLineEdit] = {}
        self._errors: dict[str, QLabel] = {}
        self._specs = {spec.key: spec for spec in MODEL_FIELDS + TRAIN_FIELDS}
        self._values: dict[str, Any] = {}
        self._base_settings: dict[str, Any] = info.base_settings("tiny")
        self._messages: dict[str, str] = {}
        self._loading = False
        # Character vocabularies by corpus (None: built-in), counted off the GUI thread once each.
        self._vocab_counts: dict[str | None, int] = {}
        self._vocab_errors: dict[str | None, str] = {}
        self._vocab_wanted: str | None = None
        self._bpe_vocab = DEFAULT_BPE_VOCAB
        self._vocab_job = Worker(self)
        self._vocab_job.sig_done.connect(self._on_vocab_counted)
        self._vocab_job.sig_busy_changed.connect(lambda busy: busy or self._on_vocab_job_finished())

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        preset_row = QHBoxLayout()
        preset_row.addWidget(QLabel("Preset"))
        self.preset = QComboBox()
        self.preset.setObjectName("pretrainPreset")
        self.preset.setToolTip("Ready-made configurations: tiny learns visibly on a CPU within a minute; "
                               "small wants a GPU; gpt2-124m is the seed's GPT-2 (inspect it: it is "
                               "far too big to train here).")
        self.preset.addItems([*info.preset_names(), "custom"])
        self.preset.currentTextChanged.connect(self._on_preset)
        preset_row.addWidget(self.preset, 1)
        layout.addLayout(preset_row)

        model_box = QGroupBox("Model")
        model_form = QFormLayout(model_box)
        self.tokenizer = QComboBox()
        self.tokenizer.setObjectName("pretrainTokenizer")
        self.tokenizer.addItems(list(data.TOKENIZERS))
        self.tokenizer.setToolTip(TOKENIZER_TIP)
        self.tokenizer.currentTextChanged.connect(self._on_tokenizer)
        model_form.addRow("Tokenizer", self.tokenizer)
        for spec in MODEL_FIELDS:
            self._add_field(model_form, spec)
        self._vocab_hint = QLabel()
        self._vocab_hint.setObjectName("pretrainVocabHint")
        self._vocab_hint.setStyleSheet(HINT_STYLE)
        self._vocab_hint.setWordWrap(True)
        self._vocab_column.insertWidget(1, self._vocab_hint)
        self.qkv_bias = QCheckBox("qkv bias")
        self.qkv_bias.setToolTip(QKV_TIP)
        self.tie_weights = QCheckBox("tie output head to embedding")
        self.tie_weights.setToolTip(TIE_TIP)
        for box in (self.qkv_bias, self.tie_weights):
            box.toggled.connect(self._on_edit)
        model_form.addRow(self.qkv_bias)
        model_form.addRow(self.tie_weights)
        layout.addWidget(model_box)

        train_box = QGroupBox("Training")
        train_form = QFormLayout(train_box)
        for spec in TRAIN_FIELDS:
            self._add_field(train_form, spec)
        self.device = QComboBox()
        self.device.addItems(DEVICES)
        self.device.setToolTip(DEVICE_TIP)
        self.device.currentTextChanged.connect(self._on_edit)
        train_form.addRow("Device", self.device)
        # Several GPUs: the run goes through torchrun, one rank per GPU (hidden with one GPU or none).
        self.gpus = QSpinBox()
        self.gpus.setObjectName("pretrainGpus")
        self.gpus.setToolTip(GPUS_TIP)
        self.gpus.valueChanged.connect(self._on_edit)
        train_form.addRow("GPUs", self.gpus)
        self._train_form = train_form
        # torch counts the GPUs: before it is in, the field keeps any saved value (set_gpu_count later)
        self.set_gpu_count(gpu_count() if loading.torch_ready() else None)
        self.checkpoint_blocks = QCheckBox("checkpoint blocks (recompute in backward)")
        self.checkpoint_blocks.setObjectName("pretrainCheckpointBlocks")
        self.checkpoint_blocks.setToolTip(CHECKPOINT_TIP)
        self.checkpoint_blocks.toggled.connect(self._on_edit)
        train_form.addRow(self.checkpoint_blocks)
        corpus_row = QHBoxLayout()
        self.corpus = QLineEdit()
        self.corpus.setPlaceholderText("built-in corpus")
        self.corpus.setToolTip(CORPUS_TIP)
        self.corpus.setObjectName("pretrainCorpus")
        self.corpus.textChanged.connect(self._on_edit)
        browse = QPushButton("…")
        browse.setToolTip("Choose a UTF-8 text file to train on")
        browse.setFixedWidth(32)
        browse.clicked.connect(self._browse)
        corpus_row.addWidget(self.corpus, 1)
        corpus_row.addWidget(browse)
        train_form.addRow("Corpus", corpus_row)
        self._corpus_error = self._error_label()
        train_form.addRow(self._corpus_error)
        layout.addWidget(train_box)
        layout.addStretch(1)

        self.apply_preset(self.preset.currentText())

    # -- public API -------------------------------------------------------------------------------
    def set_gpu_count(self, count: int | None) -> None:
        """The machine's CUDA GPUs (None: not known yet, torch loading): the GPUs field offers up to that
        many ranks and shows only above one. A value above the count is clamped without an edit event."""
        loading_before, self._loading = self._loading, True
        try:
            self.gpus.setRange(1, max(1, count) if count is not None else 1024)
        finally:
            self._loading = loading_before
        self._train_form.setRowVisible(self.gpus, count is not None and count > 1)

    def apply_preset(self, name: str) -> None:
        """Fill every field from a preset (model config and its training defaults)."""
        values = info.preset_values(name)
        if values is None:
            return
        # Settings the form does not show (tokenizer, gradient accumulation, ...) follow the preset.
        self._base_settings = info.base_settings(name)
        self.set_values(values)
        self._loading = True
        self.preset.setCurrentText(name)
        self._loading = False

    def show_preset(self, name: str) -> None:
        """Show `name` (a preset or "custom") in the preset box without filling the fields."""
        self._loading = True
        self.preset.setCurrentText(name if name in info.preset_names() else "custom")
        self._loading = False

    def set_values(self, values: dict[str, Any]) -> None:
        """Put config/settings values into the fields (unknown keys are ignored)."""
        self._loading = True
        try:
            for key, edit in self._edits.items():
                if key in values:
                    value = values[key]
                    edit.setText("" if value is None else _format(value))
            if "qkv_bias" in values:
                self.qkv_bias.setChecked(bool(values["qkv_bias"]))
            if "tie_weights" in values:
                self.tie_weights.setChecked(bool(values["tie_weights"]))
            if "checkpoint_blocks" in values:
                self.checkpoint_blocks.setChecked(bool(values["checkpoint_blocks"]))
            if "device" in values and values["device"] in DEVICES:
                self.device.setCurrentText(values["device"])
            if "corpus" in values:
                self.corpus.setText(values["corpus"] or "")
            if isinstance(values.get("gpus"), int):
                self.gpus.setValue(values["gpus"])
            if values.get("tokenizer") in data.TOKENIZERS:
                self.tokenizer.setCurrentText(values["tokenizer"])
            if self.tokenizer.currentText() == "bpe" and isinstance(values.get("vocab_size"), int):
                self._bpe_vocab = values["vocab_size"]
            for key in self._base_settings:
                if key in values and key not in self._edits and key != "corpus_path":
                    self._base_settings[key] = values[key]
        finally:
            self._loading = False
        self._validate()
        self.sig_changed.emit()

    def values(self) -> dict[str, Any]:
        """Everything in the form as one JSON-able dict (what `set_values` takes back)."""
        out = {key: self._edits[key].text() for key in self._edits}
        out.update(self._values)
        out.update(qkv_bias=self.qkv_bias.isChecked(), tie_weights=self.tie_weights.isChecked(),
                   device=self.device.currentText(), corpus=self.corpus.text().strip(),
                   checkpoint_blocks=self.checkpoint_blocks.isChecked(),
                   tokenizer=self.tokenizer.currentText(), preset=self.preset.currentText())
        return out

    def is_valid(self) -> bool:
        """True when every field parses and the config is consistent."""
        return not self._messages

    def messages(self) -> dict[str, str]:
        """Field key -> message for every bad field ("config" for whole-config problems)."""
        return dict(self._messages)

    def config_dict(self) -> dict[str, Any]:
        """The GPTConfig fields (valid only when `is_valid()`)."""
        keys = [spec.key for spec in MODEL_FIELDS]
        out = {key: self._values.get(key) for key in keys}
        out.update(qkv_bias=self.qkv_bias.isChecked(), tie_weights=self.tie_weights.isChecked())
        return out

    def settings_dict(self) -> dict[str, Any]:
        """The training settings (steps, batch size, lr, ..., device)."""
        out = {key: value for key, value in self._base_settings.items() if key != "corpus_path"}
        out.update({spec.key: self._values.get(spec.key) for spec in TRAIN_FIELDS})
        out["device"] = self.device.currentText()
        out["tokenizer"] = self.tokenizer.currentText()
        out["checkpoint_blocks"] = self.checkpoint_blocks.isChecked()
        return out

    def vocab_pending(self) -> bool:
        """True while the character vocabulary of the corpus is being counted (vocab_size is provisional)."""
        return (self.tokenizer.currentText() == "char" and self._vocab_key() not in self._vocab_counts
                and self._vocab_key() not in self._vocab_errors)

    def shutdown(self) -> None:
        """Wait for a vocabulary count still running (the window is closing)."""
        self._vocab_job.shutdown()

    def corpus_path(self) -> str | None:
        """The chosen corpus file, or None for the built-in corpus."""
        return self.corpus.text().strip() or None

    def edit(self, key: str) -> QLineEdit:
        """The line edit of one field (for tests and for focusing a bad field)."""
        return self._edits[key]

    def error_label(self, key: str) -> QLabel:
        """The message label under one field."""
        return self._corpus_error if key == "corpus" else self._errors[key]

    # -- internals --------------------------------------------------------------------------------
    def _add_field(self, form: QFormLayout, spec: FieldSpec) -> None:
        edit = QLineEdit()
        edit.setObjectName(f"pretrainField_{spec.key}")
        if spec.key == "vocab_size":  # the read-only look (a char tokenizer's count); the others when invalid
            edit.setStyleSheet(INVALID_STYLE)
        edit.setToolTip(spec.tip)
        edit.textEdited.connect(self._on_edit)
        label = QLabel(spec.label)
        label.setToolTip(spec.tip)
        error = self._error_label()
        column = QVBoxLayout()
        column.setSpacing(1)
        column.addWidget(edit)
        column.addWidget(error)
        form.addRow(label, column)
        if spec.key == "vocab_size":
            self._vocab_column = column
        self._edits[spec.key] = edit
        self._errors[spec.key] = error

    @staticmethod
    def _error_label() -> QLabel:
        label = QLabel()
        label.setStyleSheet("color: #dc2626; font-size: 11px;")
        label.setWordWrap(True)
        label.hide()
        return label

    def _on_preset(self, name: str) -> None:
        if not self._loading and name != "custom":
            self.apply_preset(name)

    def _on_edit(self, *_: Any) -> None:
        if self._loading:
            return
        self._loading = True
        self.preset.setCurrentText("custom")
        self._loading = False
        self._validate()
        self.sig_changed.emit()

    def _on_tokenizer(self, kind: str) -> None:
        if self._loading:
            return
        edit = self._edits["vocab_size"]
        if kind == "bpe":
            edit.setText(str(self._bpe_vocab))  # the char count would be far too small for a BPE
        self._on_edit()

    # -- the vocabulary: the tokenizer's for char, a setting for BPE -----------------------------
    def _vocab_key(self) -> str | None:
        return self.corpus_path()

    def _sync_vocab(self) -> None:
        """Char: the field shows the corpus's character count, read-only. BPE: the field is a setting."""
        edit = self._edits["vocab_size"]
        char = self.tokenizer.currentText() == "char"
        edit.setReadOnly(char)
        if not char:
            text = edit.text().strip().replace(",", "").replace("_", "")
            if text.isdigit():
                self._bpe_vocab = int(text)
            self._vocab_hint.setText("your setting: BPE learns up to this many tokens (fewer if the corpus "
                                     "runs out of merges)")
            return
        key = self._vocab_key()
        if key is not None and _corpus_problem(key):
            self._vocab_hint.setText("from the tokenizer, once the corpus file can be read")
            return
        if key is not None and os.path.getsize(key) <= SYNC_COUNT_BYTES:
            self._count_now(key)  # cheap, and the core's cache notices an edited file
        elif key not in self._vocab_counts and key not in self._vocab_errors:
            self._start_count(key)
        if key in self._vocab_errors:
            problem = self._vocab_errors[key]
            self._vocab_hint.setText(f"from the tokenizer, but the corpus cannot be used: {problem}")
        elif key in self._vocab_counts:
            count = self._vocab_counts[key]
            edit.setText(str(count))
            self._vocab_hint.setText(f"from the tokenizer: {count} distinct characters in the corpus")
        else:
            self._vocab_hint.setText("from the tokenizer: counting the corpus's characters…")

    def _count_now(self, key: str) -> None:
        self._vocab_counts.pop(key, None)
        self._vocab_errors.pop(key, None)
        count, error = _count_or_error(key)
        if count is not None:
            self._vocab_counts[key] = count
        else:
            self._vocab_errors[key] = error

    def _start_count(self, key: str | None) -> None:
        self._vocab_wanted = key
        self._vocab_job.submit(lambda _job: (key, _count_or_error(key)))

    def _on_vocab_counted(self, result: tuple) -> None:
        key, (count, error) = result
        if count is not None:
            self._vocab_counts[key] = count
        else:
            self._vocab_errors[key] = error
        if key == self._vocab_key() and self.tokenizer.currentText() == "char":
            self._validate()
            self.sig_changed.emit()
            if count is not None:
                self.sig_vocab_counted.emit(count)

    def _on_vocab_job_finished(self) -> None:
        # The corpus changed while counting another one: count the one chosen now.
        wanted = self._vocab_key()
        if (self.tokenizer.currentText() == "char" and wanted not in self._vocab_counts
                and wanted not in self._vocab_errors):
            self._sync_vocab()

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a text corpus", "", "Text (*.txt);;All files (*)")
        if path:
            self.corpus.setText(path)

    def _validate(self) -> None:
        self._sync_vocab()
        messages: dict[str, str] = {}
        values: dict[str, Any] = {}
        for key, spec in self._specs.items():
            text = self._edits[key].text().strip()
            value, message = _parse(spec, text)
            if message:
                messages[key] = message
            else:
                values[key] = value
        if not messages:
            config = {key: values.get(key) for key in (s.key for s in MODEL_FIELDS)}
            config.update(qkv_bias=self.qkv_bias.isChecked(), tie_weights=self.tie_weights.isChecked())
            for key, problem in info.config_problems(config).items():
                messages[key if key in self._edits else _field_of(problem)] = problem
        vocab = values.get("vocab_size")
        if self.tokenizer.currentText() == "bpe" and isinstance(vocab, int) and vocab <= BYTE_ALPHABET:
            messages["vocab_size"] = (f"a byte-level BPE needs more than {BYTE_ALPHABET} tokens (its byte "
                                      f"alphabet): {DEFAULT_BPE_VOCAB} for example")
        corpus_message = _corpus_problem(self.corpus.text().strip())
        if corpus_message:
            messages["corpus"] = corpus_message
        self._values = values
        self._messages = messages
        emb = values.get("emb_dim")
        self._edits["hidden_dim"].setPlaceholderText(f"4 × emb = {4 * emb}" if emb else "4 × emb_dim")
        for key, edit in self._edits.items():
            self._mark(edit, self._errors[key], messages.get(key))
        self._mark(self.corpus, self._corpus_error, messages.get("corpus"))

    @staticmethod
    def _mark(edit: QLineEdit, label: QLabel, message: str | None) -> None:
        bad = bool(message)
        if edit.property("invalid") != bad:
            edit.setProperty("invalid", bad)
            if edit.styleSheet():  # re-polish so that the [invalid="true"] rule is re-evaluated
                edit.style().unpolish(edit)
                edit.style().polish(edit)
            elif bad:
                edit.setStyleSheet(INVALID_STYLE)
        label.setText(message or "")
        label.setVisible(bad)


def gpu_count() -> int:
    """How many CUDA GPUs this machine has (asks torch: call it once torch is in)."""
    from explorer.core.gpt import distributed

    return distributed.gpu_count()


def _count_or_error(corpus: str | None) -> tuple[int | None, str | None]:
    """(character vocabulary size, None) or (None, why the corpus cannot be used); runs off-thread."""
    try:
        return data.char_vocab_size(corpus), None
    except (data.CorpusError, OSError) as exc:
        return None, str(exc)


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _parse(spec: FieldSpec, text: str) -> tuple[Any, str | None]:
    """Parse one field's text into its value, or return a message saying what is wrong."""
    if not text:
        if spec.optional:
            return None, None
        return None, f"{spec.label} is required"
    try:
        value = spec.kind(text.replace("_", "").replace(",", "")) if spec.kind is int else float(text)
    except ValueError:
        noun = "a whole number" if spec.kind is int else "a number"
        return None, f"{spec.label} must be {noun} (got {text!r})"
    if spec.kind is float and value != value:  # NaN
        return None, f"{spec.label} must be a number"
    if spec.minimum is not None and value < spec.minimum:
        return None, f"{spec.label} must be at least {_format(spec.minimum)}"
    if spec.maximum is not None and value > spec.maximum:
        return None, f"{spec.label} must be at most {_format(spec.maximum)}"
    return value, None


def _field_of(message: str) -> str:
    """Which field a whole-config message is about (the first field name it mentions)."""
    lowered = message.lower()
    for spec in MODEL_FIELDS:
        if spec.key in lowered or spec.label.lower() in lowered:
            return spec.key
    if "head" in lowered:
        return "n_heads"
    return "emb_dim"


def _corpus_problem(path: str) -> str | None:
    """A quick check of the corpus path as it is typed (the full check happens when training starts)."""
    if not path:
        return None
    if not os.path.exists(path):
        return "no such file"
    if os.path.isdir(path):
        return "this is a folder: choose a text file"
    if not os.access(path, os.R_OK):
        return "this file cannot be read"
    return info.corpus_problem(path)

