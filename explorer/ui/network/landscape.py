"""The loss landscape of the newest toy run: a 2-D slice of the loss around its weights, and its path.

`LandscapeView` computes explorer/core/mlp/landscape.py's `toy_landscape` on its own instance of the
one Worker class (so it never cancels a training run), and draws the loss as a heat map with contour
lines, coloured on a log scale, with the training path projected onto the slice (start ○, end ●) and the
step chosen on the loss curve (`show_step`, a StepSync view) marked ◆. Losses that are not finite are
gaps. The runs do not keep their weights: the view replays the run's seeded training to its last step,
and says which weights it shows.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from explorer.core.mlp.landscape import DIRECTIONS, GRID_SIZE, Landscape, toy_dataset, toy_landscape
from explorer.core.mlp.network import NetSpec
from explorer.core.mlp.toydata import ToyDataset, check_toy_spec
from explorer.core.numbers import fmt_number
from explorer.core.workspaces.network import ToyRun
from explorer.ui.common import theme as themes
from explorer.ui.common.labels import ElidedLabel
from explorer.ui.common.plot_menus import plot_widget
from explorer.ui.common.worker import Worker

CONTOURS = 9  # contour lines between the lowest and the highest loss (evenly on the log scale)
TITLE = "loss around the weights (colours on a log scale; ○ start, ● end of the path, ◆ the chosen step)"
COLOUR_MAP = "viridis"  # low loss dark blue, high loss yellow: ordered, and readable in both themes

CONCEPT = (
    "A network's loss depends on all its weights at once: hundreds of dimensions here. A picture can only "
    "show a plane through them: the loss at w + a·d1 + b·d2 for the weights w of the newest run and two "
    "directions d1, d2, with a and b on the axes. The centre (0, 0) is the weights themselves. "
    "Filter-normalised random directions (Li et al. 2018): each unit's row of a direction is scaled to "
    "the length of that unit's weights, so ±1 moves every unit by as much as it is long, and sharp and "
    "flat minima of different networks compare fairly (biases are not moved). It is only a slice: a "
    "valley here can be a slope in a direction the picture does not show.")
DIRECTION_TIPS = {
    "random": "Two seeded random directions, filter-normalised. In hundreds of dimensions they are nearly "
              "at right angles to the path training took, so the path shows only as a short scribble "
              "near the centre: the status says how much of it the plane holds.",
    "pca": "The two directions the training path moved along most (principal components of the recorded "
           "weights minus the final ones): the plane the path lies in, so the path shows whole. The axes "
           "are in parameter units.",
}


class LandscapeView(QWidget):
    """The loss landscape around the newest toy run's weights, computed on demand off the GUI thread."""

    def __init__(self, parent=None, later: bool = False):
        """`later`: build nothing yet; the owner runs `build_steps()` (a panel built in slices)."""
        super().__init__(parent)
        if not later:
            for _ in self.build_steps():
                pass

    def build_steps(self):
        """The controls and the plot, then the colour bar: one piece per `yield`."""
        self.spec: NetSpec | None = None
        self.data: ToyDataset | None = None
        self.run: ToyRun | None = None
        self.landscape: Landscape | None = None
        self.shown_step: int | None = None
        self._subject = ""  # which weights the landscape shows, in words
        self._theme = themes.get_theme()
        self._error_colour = self._theme["error"]
        self._worker = Worker(self)
        self._worker.sig_progress.connect(self._on_progress)
        self._worker.sig_done.connect(self._on_done)
        self._worker.sig_failed.connect(lambda m: self._finish(f"The landscape failed: {m}", error=True))
        yield from self._build()
        self._finish("Where does the run sit? Press Compute landscape.")

    # -- building ------------------------------------------------------------------------------------

    def _build(self):
        self.button = QPushButton("Compute landscape")
        self.button.setObjectName("landscapeButton")
        self.button.setToolTip(
            "Compute the loss on a 31 x 31 grid around the newest run's weights (replaying the run, which "
            "is seeded, to get them). Press again to cancel. " + CONCEPT)
        self.button.clicked.connect(self.start_or_cancel)
        self.directions = QComboBox()
        self.directions.setObjectName("landscapeDirections")
        for key, label in DIRECTIONS.items():
            self.directions.addItem(label, key)
        self.directions.setToolTip("Which plane through the weights to show.\n\nRandom: "
                                   + DIRECTION_TIPS["random"] + "\n\nPCA: " + DIRECTION_TIPS["pca"])
        self.seed = QSpinBox()
        self.seed.setObjectName("landscapeSeed")
        self.seed.setRange(0, 9999)
        self.seed.setToolTip("The seed of the random directions: another seed, another slice through the "
                             "same weights (the centre stays the same)")
        self.progress = QProgressBar()
        self.progress.setTextVisible(False)
        self.progress.setFixedWidth(120)
        self.progress.hide()
        self.status = ElidedLabel("", lines=2)
        self.status.setObjectName("landscapeStatus")
        self.plot = plot_widget(menu=False)
        self.plot.setObjectName("landscapePlot")
        self.plot.setToolTip(CONCEPT)
        self.plot.setTitle(TITLE, size="9pt")
        self.plot.setAspectLocked(False)
        self.plot.getAxis("left").enableAutoSIPrefix(False)
        self.plot.getAxis("bottom").enableAutoSIPrefix(False)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.plot.addItem(self.image)
        self.contours: list[pg.IsocurveItem] = []
        for _ in range(CONTOURS):
            iso = pg.IsocurveItem(level=0.0, pen=pg.mkPen((255, 255, 255, 90), width=1))
            iso.setParentItem(self.image)
            iso.setZValue(5)
            self.contours.append(iso)
        self.path_shadow = pg.PlotDataItem([], [], pen=pg.mkPen((15, 23, 42, 200), width=3))
        self.path = pg.PlotDataItem([], [], pen=pg.mkPen((248, 250, 252), width=1.5))
        self.ends = pg.ScatterPlotItem([], [], size=11)
        self.marker = pg.ScatterPlotItem([], [], symbol="d", size=14,
                                         brush=pg.mkBrush(239, 68, 68), pen=pg.mkPen("w", width=1.5))
        self.marker_text = pg.TextItem("", color=(248, 250, 252), anchor=(0, 1.2), fill=(15, 23, 42, 170))
        for z, item in enumerate((self.path_shadow, self.path, self.ends, self.marker, self.marker_text)):
            item.setZValue(10 + z)
            self.plot.addItem(item)
        yield
        self.colour_bar = pg.ColorBarItem(values=(0, 1), colorMap=pg.colormap.get(COLOUR_MAP),
                                          interactive=False, width=12)
        self.colour_bar.setImageItem(self.image, insert_in=self.plot.getPlotItem())
        self.colour_bar.hide()
        row = QHBoxLayout()
        row.addWidget(self.button)
        row.addWidget(self.progress)
        label = QLabel("Directions")
        label.setToolTip(self.directions.toolTip())
        row.addWidget(label)
        row.addWidget(self.directions)
        seed_label = QLabel("Seed")
        seed_label.setToolTip(self.seed.toolTip())
        row.addWidget(seed_label)
        row.addWidget(self.seed)
        self.readout = ElidedLabel("")  # takes the room left, never widens the panel
        self.readout.setObjectName("landscapeReadout")
        self.readout.setToolTip("The loss at the grid point under the pointer: a and b are the steps along "
                                "the two directions from the weights")
        row.addWidget(self.readout, 1)
        self.plot.scene().sigMouseMoved.connect(self._hover)
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        box.addLayout(row)
        box.addWidget(self.status)
        box.addWidget(self.plot, 1)
        self.directions.currentIndexChanged.connect(
            lambda _i: self.seed.setEnabled(self.directions.currentData() == "random"))
        self._label_axes("random")
        self._pending_subject = ""
        # what the picture (and the job running) is of: a ToyRun, or ("start", spec, data)
        self._source: object = None
        self._pending_source: object = None

    # -- public API ----------------------------------------------------------------------------------

    def set_problem(self, spec: NetSpec | None, data: ToyDataset | None) -> None:
        """The form's network and the data: what the landscape shows before any run (starting weights).

        A picture of the starting weights of another network or data is cleared (and its job cancelled)."""
        self.spec, self.data = spec, data
        self._forget(lambda source: isinstance(source, tuple)
                     and (source[1] != spec or source[2] is not data), "The network changed")

    def show_run(self, run: ToyRun | None) -> None:
        """The newest toy run: the next Compute shows the weights it has reached. When the runs are
        cleared (None), a picture of a run is cleared too."""
        self.run = run
        if run is None:
            self._forget(lambda source: isinstance(source, ToyRun), "The runs were cleared")

    def _forget(self, stale, why: str) -> None:
        """Clear the picture and cancel the job when `stale(source)` says they show what is gone."""
        if self._worker.is_busy() and stale(self._pending_source):
            self._worker.cancel()
            self._finish(f"{why}: press Compute landscape again.")
        if self.landscape is not None and stale(self._source):
            self.show_landscape(None)
            self._source = None
            self._finish(f"{why}: press Compute landscape again.")

    def is_running(self) -> bool:
        """True while a landscape is computed."""
        return self._worker.is_busy()

    def start_or_cancel(self) -> None:
        """Compute the landscape, or cancel the one being computed."""
        if self._worker.is_busy():
            self._worker.cancel()
            self._finish("Cancelled.")
            return
        try:
            spec, data, steps, subject = self._problem()
        except Exception as exc:  # noqa: BLE001 - a one-line message, never a traceback
            self._finish(f"Cannot draw a landscape: {exc}", error=True)
            return
        directions, seed = self.directions.currentData(), self.seed.value()

        def job_fn(job):
            return toy_landscape(spec, data, steps, size=GRID_SIZE, seed=seed, directions=directions,
                                 progress=job.progress, cancelled=lambda: job.cancelled)

        self._pending_subject = subject
        self.progress.setRange(0, max(1, steps + GRID_SIZE))
        self.progress.setValue(0)
        self.progress.show()
        self.button.setText("Cancel")
        replay = f"replaying {steps} steps, then " if steps else ""
        self._message(f"Computing the landscape around {subject}: {replay}{GRID_SIZE}² losses…")
        self._worker.submit(job_fn)

    def show_landscape(self, landscape: Landscape | None, subject: str = "") -> None:
        """Draw a computed landscape (None clears the picture); also used by tests."""
        self.landscape = landscape
        self._subject = subject
        if landscape is None:
            self.image.clear()
            for iso in self.contours:
                iso.setData(None)
            for item in (self.path_shadow, self.path, self.ends, self.marker):
                item.setData([], [])
            self.marker_text.setText("")
            self.colour_bar.hide()
            return
        shown = colour_values(landscape.losses)
        xs, ys = landscape.xs, landscape.ys
        dx = (xs[-1] - xs[0]) / max(1, len(xs) - 1)
        dy = (ys[-1] - ys[0]) / max(1, len(ys) - 1)
        finite = np.isfinite(shown)
        low, high = (float(shown[finite].min()), float(shown[finite].max())) if finite.any() else (0.0, 1.0)
        if high <= low:
            high = low + 1e-6
        self.image.setImage(shown, autoLevels=False, levels=(low, high))
        self.image.setRect(QRectF(xs[0] - dx / 2, ys[0] - dy / 2, xs[-1] - xs[0] + dx, ys[-1] - ys[0] + dy))
        self.colour_bar.show()
        self.colour_bar.setLevels((low, high))
        self.colour_bar.axis.setTicks([loss_ticks(low, high)])  # losses, not their logs
        filled = np.where(finite, shown, high)  # gaps count as high ground for the contours
        for k, iso in enumerate(self.contours):
            iso.setData(filled.T if finite.any() else None)  # IsocurveItem reads [x, y]
            iso.setLevel(low + (high - low) * (k + 1) / (CONTOURS + 1))  # pixel centres, as the image's
        self._label_axes(landscape.directions)
        path = landscape.path_xy
        if len(path) and np.isfinite(path).all():
            self.path_shadow.setData(path[:, 0], path[:, 1])
            self.path.setData(path[:, 0], path[:, 1])
            start = {"pos": path[0], "symbol": "o", "brush": pg.mkBrush(0, 0, 0, 0),
                     "pen": pg.mkPen((248, 250, 252), width=2.5)}
            end = {"pos": path[-1], "symbol": "o", "brush": pg.mkBrush(248, 250, 252),
                   "pen": pg.mkPen((15, 23, 42), width=1.5)}
            self.ends.setData([start, end])
        else:
            for item in (self.path_shadow, self.path, self.ends):
                item.setData([], [])
        self.plot.setXRange(xs[0] - dx / 2, xs[-1] + dx / 2, padding=0)
        self.plot.setYRange(ys[0] - dy / 2, ys[-1] + dy / 2, padding=0)
        self.show_step(self.shown_step)

    def show_step(self, step: int | None) -> None:
        """Mark the path's point nearest `step` (None: the newest), as chosen on the loss curve."""
        self.shown_step = step
        point = self.landscape.point_at(step) if self.landscape is not None else None
        if point is None or not all(math.isfinite(v) for v in point[1:]):
            self.marker.setData([], [])
            self.marker_text.setText("")
            return
        at, a, b = point
        self.marker.setData([a], [b])
        self.marker_text.setText(f"step {at}")
        self.marker_text.setPos(a, b)

    def set_theme(self, theme: dict[str, str]) -> None:
        """Recolour for a theme (the heat map's colours are the same in both)."""
        themes.style_plot(self.plot, self.plot.getPlotItem(), theme, TITLE)
        self.colour_bar.axis.setPen(theme["muted"])
        self.colour_bar.axis.setTextPen(theme["muted"])
        self._error_colour = theme["error"]
        self._theme = theme
        if self.status.property("error"):
            self.status.setStyleSheet(f"color: {self._error_colour};")

    def stop(self, wait_ms: int = 2000) -> None:
        """Cancel a computation and wait for its thread."""
        self._worker.shutdown(wait_ms)

    # -- private ---------------------------------------------------------------------------------------

    def _problem(self) -> tuple[NetSpec, ToyDataset, int, str]:
        """(spec, data, steps, words) of the weights to show: the newest run's, else the starting ones."""
        run = self.run
        if run is not None and run.steps:
            spec = run.spec.spec()
            check_toy_spec(spec)
            steps = run.planned_steps if run.status == "done" else run.steps[-1]
            subject = f"run {run.number}'s weights after step {steps}"
            self._pending_source = run
            return spec, toy_dataset(run.dataset), int(steps), subject
        if self.spec is None or self.data is None:
            raise ValueError("no network yet")
        check_toy_spec(self.spec)
        self._pending_source = ("start", self.spec, self.data)
        return self.spec, self.data, 0, "the starting weights (no run yet)"

    def _on_progress(self, batch: list) -> None:
        done, total = batch[-1]
        self.progress.setRange(0, max(1, int(total)))
        self.progress.setValue(int(done))

    def _on_done(self, landscape: Landscape | None) -> None:
        if landscape is None:
            self._finish("Cancelled.")
            return
        subject = self._pending_subject
        self._source = self._pending_source
        self.show_landscape(landscape, subject)
        self._finish(self._summary(landscape, subject), error=not math.isfinite(landscape.centre_loss))

    def _summary(self, land: Landscape, subject: str) -> str:
        if not np.isfinite(land.losses).any():
            return (f"Around {subject} no loss is a finite number (the weights overflowed): nothing to "
                    "draw. Lower the learning rate and train again.")
        centre = fmt_number(land.centre_loss) if math.isfinite(land.centre_loss) else "not finite"
        text = f"Around {subject}: loss {centre} at the centre (the weights)."
        mismatch = self._replay_mismatch(land)
        if mismatch:
            text += " " + mismatch
        gaps = int((~np.isfinite(land.losses)).sum())
        if gaps:
            text += f" {gaps} grid points have no finite loss (gaps)."
        if len(land.path_steps) > 1 and land.in_plane is not None:
            share = f"{land.in_plane:.0%}"
            if land.directions == "random":
                text += (f" Path ○ start, ● end: the random plane holds {share} of its length; try the "
                         "PCA directions to see it whole.")
            else:
                text += (f" Path ○ start, ● end: this plane holds {share} of its length and "
                         f"{land.explained:.0%} of its spread.")
        return text

    def _replay_mismatch(self, land: Landscape) -> str:
        """A warning when the replayed weights' loss differs from the run's recorded one (it should not)."""
        run = self.run
        if run is None or land.step not in run.steps:
            return ""
        recorded = run.train_loss[run.steps.index(land.step)]
        if not (math.isfinite(recorded) and math.isfinite(land.centre_loss)):
            return ""
        if abs(recorded - land.centre_loss) <= 1e-5 * (1 + abs(recorded)):
            return ""
        return (f"The replay's loss differs from the run's ({fmt_number(recorded)}): the weights shown "
                "may not be the run's.")

    def _hover(self, scene_pos) -> None:
        land = self.landscape
        if land is None:
            return
        point = self.plot.getPlotItem().vb.mapSceneToView(scene_pos)
        self.readout.setText(readout_text(land, point.x(), point.y()))

    def _label_axes(self, directions: str) -> None:
        unit = "filter-normalised" if directions == "random" else "parameter units"
        name = "direction" if directions == "random" else "principal direction"
        self.plot.setLabel("bottom", f"{name} 1 ({unit})")
        self.plot.setLabel("left", f"{name} 2")

    def _finish(self, text: str, error: bool = False) -> None:
        self.progress.hide()
        self.button.setText("Compute landscape")
        self._message(text, error)

    def _message(self, text: str, error: bool = False) -> None:
        self.status.setText(text)
        self.status.setStyleSheet(f"color: {self._error_colour};" if error else "")
        self.status.setProperty("error", error)


def colour_values(losses: np.ndarray) -> np.ndarray:
    """log10 of the losses for the colours (NaN, a gap, where not finite); a loss of 0 or below is drawn
    at the smallest positive loss of the grid (log10 has no value there)."""
    out = np.array(losses, dtype=float)
    out[~np.isfinite(out)] = np.nan
    positive = out[np.isfinite(out) & (out > 0)]
    if not positive.size:
        return np.where(np.isfinite(out), 0.0, np.nan)
    floor = float(positive.min())
    with np.errstate(invalid="ignore"):
        return np.log10(np.where(np.isfinite(out), np.maximum(out, floor), np.nan))


def readout_text(land: Landscape, a: float, b: float) -> str:
    """"a = …, b = …: loss …" for the grid point nearest (a, b); "" outside the grid."""
    xs, ys = land.xs, land.ys
    half_x = (xs[-1] - xs[0]) / max(1, len(xs) - 1) / 2
    half_y = (ys[-1] - ys[0]) / max(1, len(ys) - 1) / 2
    if not (xs[0] - half_x <= a <= xs[-1] + half_x and ys[0] - half_y <= b <= ys[-1] + half_y):
        return ""
    i, j = int(np.argmin(np.abs(xs - a))), int(np.argmin(np.abs(ys - b)))
    value = land.losses[j, i]
    loss = fmt_number(float(value)) if np.isfinite(value) else "not finite (a gap)"
    return f"a = {fmt_number(float(xs[i]))}, b = {fmt_number(float(ys[j]))}: loss {loss}"


def loss_ticks(low: float, high: float) -> list[tuple[float, str]]:
    """Colour-bar ticks for log10 levels from `low` to `high`, labelled with the losses themselves: 1, 2, 5
    times powers of ten over a wide range, else five evenly spaced losses with as many digits as it takes
    to tell them apart."""
    ticks = []
    for exponent in range(math.floor(low), math.ceil(high) + 1):
        for mantissa in (1, 2, 5):
            value = mantissa * 10.0**exponent
            if low - 1e-9 <= math.log10(value) <= high + 1e-9:
                ticks.append((math.log10(value), f"{value:g}"))
    if len(ticks) >= 3:
        return ticks
    values = np.linspace(10.0**low, 10.0**high, 5)
    for digits in range(2, 8):
        labels = [f"{v:.{digits}g}" for v in values]
        if len(set(labels)) == len(labels):
            break
    return [(math.log10(v), label) for v, label in zip(values, labels, strict=True) if v > 0]
