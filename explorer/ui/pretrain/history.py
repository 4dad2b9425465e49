"""Run history: every run with its colour, status and final losses; hide, compare, delete, reuse.

A checkbox per run shows or hides its curves; "Compare" puts the checked runs side by side (only
the settings that differ, then their final losses); "Use config" loads a run's hyperparameters back
into the form so a tweak-and-retrain is one more click.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from explorer.core.gpt.runs import PretrainRun, config_differences
from explorer.ui.common import actions


def _swatch(color: str) -> QIcon:
    pixmap = QPixmap(12, 12)
    pixmap.fill(QColor(color))
    return QIcon(pixmap)


def _fmt(value: float | None) -> str:
    return "–" if value is None or value != value else f"{value:.3f}"


class RunHistory(QWidget):
    """The list of runs (objectName pretrainRunHistory) with Compare, Use config and Delete."""

    sig_visibility_changed = Signal(int, bool)
    """A run's checkbox changed: (run id, visible)."""
    sig_delete_requested = Signal(int)
    """The user asked to delete a run."""
    sig_continue_requested = Signal(int)
    """The user wants to resume training from this run's checkpoint (a new run)."""
    sig_use_config = Signal(int)
    """The user wants this run's hyperparameters back in the form."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._runs: dict[int, PretrainRun] = {}
        self._items: dict[int, QListWidgetItem] = {}
        self.list = QListWidget()
        self.list.setObjectName("pretrainRunHistory")
        self.list.setWordWrap(True)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.list.setSpacing(2)
        self.list.setToolTip("Every run keeps its configuration and curves. Untick to hide its curves; "
                             "double-click to load its hyperparameters into the form.")
        self.list.itemChanged.connect(self._on_item_changed)
        self.list.itemDoubleClicked.connect(lambda item: self.sig_use_config.emit(item.data(Qt.UserRole)))
        self.list.currentItemChanged.connect(self._update_buttons)
        self.compare_button = QPushButton("Compare")
        self.compare_button.setToolTip("Side by side: the settings that differ between the ticked runs, "
                                       "and their final losses")
        self.compare_button.clicked.connect(self.compare)
        self.use_button = QPushButton("Use config")
        self.use_button.setToolTip("Load the selected run's hyperparameters into the form")
        self.use_button.clicked.connect(self._use_current)
        self.delete_button = QPushButton("Delete")
        actions.describe_button(self.delete_button, "pretrain.delete_run", with_shortcut=True)
        self.delete_button.clicked.connect(self._delete_current)
        self.continue_button = QPushButton("Continue")
        self.continue_button.setObjectName("pretrainContinueButton")
        self.continue_button.setToolTip(
            "Resume training: a new run starts from the selected run's checkpoint (its weights, AdamW state "
            "and step) and trains the form's number of steps more. Choose another corpus first to fine-tune: "
            "the pretrained model then adapts to your text. The selected run's files are not changed.")
        self.continue_button.clicked.connect(self._continue_current)
        buttons = QHBoxLayout()
        for button in (self.compare_button, self.use_button, self.continue_button, self.delete_button):
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        title = QLabel("<b>Runs</b>")
        layout.addWidget(title)
        layout.addWidget(self.list, 1)
        layout.addLayout(buttons)
        self._update_buttons()

    # -- public API -------------------------------------------------------------------------------
    def add_run(self, run: PretrainRun) -> None:
        """Add a run at the bottom and select it."""
        self._runs[run.run_id] = run
        item = QListWidgetItem(_swatch(run.color), "")
        item.setData(Qt.UserRole, run.run_id)
        item.setFlags(item.flags() | Qt.ItemIsUserCheckable)
        item.setCheckState(Qt.Checked if run.visible else Qt.Unchecked)
        self._items[run.run_id] = item
        self.list.blockSignals(True)
        self.list.addItem(item)
        self.list.blockSignals(False)
        self.list.setCurrentItem(item)
        self.update_run(run.run_id)

    def update_run(self, run_id: int) -> None:
        """Refresh a run's line (status, final losses)."""
        item = self._item(run_id)
        run = self._runs.get(run_id)
        if item is None or run is None:
            return
        train, val = run.final_losses()
        short, _, details = run.name.partition(" · ")
        text = f"{short}  ·  {run.status}  ·  train {_fmt(train)}  ·  val {_fmt(val)}\n{details}"
        self.list.blockSignals(True)
        item.setText(text)
        item.setToolTip(f"{run.name}\n{run.message}" if run.message else run.name)
        self.list.blockSignals(False)

    def remove_run(self, run_id: int) -> None:
        """Take a run off the list."""
        item = self._item(run_id)
        if item is not None:
            self.list.takeItem(self.list.row(item))
        self._items.pop(run_id, None)
        self._runs.pop(run_id, None)
        self._update_buttons()

    def select_run(self, run_id: int) -> None:
        """Make a run the current one."""
        item = self._item(run_id)
        if item is not None:
            self.list.setCurrentItem(item)

    def current_run_id(self) -> int | None:
        """The selected run, if any."""
        item = self.list.currentItem()
        return None if item is None else int(item.data(Qt.UserRole))

    def checked_runs(self) -> list[PretrainRun]:
        """The runs whose box is ticked, in list order."""
        out = []
        for row in range(self.list.count()):
            item = self.list.item(row)
            if item.checkState() == Qt.Checked:
                out.append(self._runs[int(item.data(Qt.UserRole))])
        return out

    def compare(self) -> QDialog:
        """Show the comparison dialog of the ticked runs (returned, non-modal)."""
        runs = self.checked_runs() or list(self._runs.values())
        dialog = QDialog(self)
        dialog.setWindowTitle("Compare runs")
        dialog.setObjectName("pretrainCompareDialog")
        table = QTableWidget(dialog)
        rows = config_differences(runs)
        finals = [run.final_losses() for run in runs]
        rows += [("final train loss", [_fmt(t) for t, _ in finals]),
                 ("final val loss", [_fmt(v) for _, v in finals])]
        table.setRowCount(len(rows))
        table.setColumnCount(len(runs))
        table.setHorizontalHeaderLabels([run.name.split(" · ")[0] for run in runs])
        table.setEditTriggers(QTableWidget.NoEditTriggers)
        table.setVerticalHeaderLabels([key for key, _ in rows])
        for r, (_, values) in enumerate(rows):
            for c, value in enumerate(values):
                table.setItem(r, c, QTableWidgetItem("" if value is None else str(value)))
        for c, run in enumerate(runs):
            table.horizontalHeaderItem(c).setIcon(_swatch(run.color))
        table.resizeColumnsToContents()
        note = QLabel("Only the settings that differ are listed." if len(runs) > 1
                      else "Tick two or more runs to compare them.")
        close = QDialogButtonBox(QDialogButtonBox.Close)
        close.rejected.connect(dialog.close)
        layout = QVBoxLayout(dialog)
        layout.addWidget(note)
        layout.addWidget(table)
        layout.addWidget(close)
        dialog.resize(560, 320)
        dialog.show()
        return dialog

    # -- internals --------------------------------------------------------------------------------
    def _item(self, run_id: int) -> QListWidgetItem | None:
        return self._items.get(run_id)  # by id: a scan per run made a 1,000-run session quadratic

    def _on_item_changed(self, item: QListWidgetItem) -> None:
        run_id = int(item.data(Qt.UserRole))
        visible = item.checkState() == Qt.Checked
        if run_id in self._runs and self._runs[run_id].visible != visible:
            self.sig_visibility_changed.emit(run_id, visible)

    def _delete_current(self) -> None:
        run_id = self.current_run_id()
        if run_id is not None:
            self.sig_delete_requested.emit(run_id)

    def _continue_current(self) -> None:
        run_id = self.current_run_id()
        if run_id is not None:
            self.sig_continue_requested.emit(run_id)

    def _use_current(self) -> None:
        run_id = self.current_run_id()
        if run_id is not None:
            self.sig_use_config.emit(run_id)

    def _update_buttons(self, *_: object) -> None:
        has = self.list.currentItem() is not None
        self.use_button.setEnabled(has)
        self.continue_button.setEnabled(has)
        self.delete_button.setEnabled(has)
        self.compare_button.setEnabled(self.list.count() > 0)
