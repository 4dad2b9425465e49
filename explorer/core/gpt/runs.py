"""Qt-free record of training runs: config, settings, growing metric arrays, samples, checkpoint.

The panel appends the trainer's record dicts to a `PretrainRun`; the plots read its numpy views. Arrays grow
by doubling, so appending stays O(1) and a redraw never copies a Python list of a million floats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from explorer.core.gpt.histograms import from_record as histogram_entry
from explorer.core.gpt.histograms import thin as thin_histograms

PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#be185d", "#4d7c0f",
           "#7c3aed", "#b45309")


class Series:
    """A growable float64 array (amortised O(1) append; `view()` is a no-copy slice)."""

    def __init__(self, capacity: int = 256) -> None:
        self._data = np.empty(capacity, dtype=np.float64)
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def append(self, value: float) -> None:
        """Add one value (None becomes NaN)."""
        if self._n == len(self._data):
            grown = np.empty(2 * len(self._data), dtype=np.float64)
            grown[: self._n] = self._data[: self._n]
            self._data = grown
        self._data[self._n] = np.nan if value is None else float(value)
        self._n += 1

    def view(self) -> np.ndarray:
        """The values so far (do not keep it across appends)."""
        return self._data[: self._n]

    def tolist(self) -> list[float]:
        """Plain floats, for saving."""
        return [None if math.isnan(v) else v for v in self.view().tolist()]


def ema(values: np.ndarray, weight: float) -> np.ndarray:
    """Debiased exponential moving average (TensorBoard's smoothing); NaNs are skipped."""
    out = np.empty_like(values)
    if weight <= 0:
        out[:] = values
        return out
    acc, norm = 0.0, 0.0
    for i, v in enumerate(values.tolist()):
        if v == v:
            acc = weight * acc + (1 - weight) * v
            norm = weight * norm + (1 - weight)
        out[i] = acc / norm if norm else np.nan
    return out


STEP_KEYS = ("step", "tokens", "train_loss", "lr", "grad_norm")
EVAL_KEYS = ("step", "tokens", "val_loss")


@dataclass
class PretrainRun:
    """One training run: what was asked for, what came back."""

    run_id: int
    name: str
    config: dict[str, Any]
    settings: dict[str, Any]
    corpus: str | None = None
    color: str = PALETTE[0]
    status: str = "starting"  # starting | running | paused | done | stopped | error
    message: str = ""
    checkpoint: str | None = None
    device: str = ""
    visible: bool = True
    samples: list[tuple[int, str]] = field(default_factory=list)
    steps: dict[str, Series] = field(default_factory=lambda: {k: Series() for k in STEP_KEYS})
    evals: dict[str, Series] = field(default_factory=lambda: {k: Series() for k in EVAL_KEYS})
    last_step: dict[str, Any] = field(default_factory=dict)
    continues: int | None = None  # the run whose checkpoint this one resumed (fine-tuning on another text)
    uid: str | None = None  # the identity written in the run's folder when it was made (None: older runs)
    # Per-block health of the steps that measured it (explorer/core/gpt/health.py): dicts with "step",
    # "grad_norm" (global, before clipping), "block_grad_norms", "update_ratios" (lists, None: not finite).
    health: list[dict[str, Any]] = field(default_factory=list)
    # Per-block activation and gradient histograms of the steps that recorded them, in step order
    # (explorer/core/gpt/histograms.py StepHistograms; thinned to a memory budget on long runs).
    histograms: list[Any] = field(default_factory=list)

    def add(self, record: dict[str, Any]) -> None:
        """Take one trainer record into the run."""
        kind = record.get("type")
        if kind == "step":
            for key in STEP_KEYS:
                self.steps[key].append(record.get(key))
            self.last_step = record
            if "block_grad_norms" in record:
                self.health.append(health_entry(record))
            if self.status == "starting":
                self.status = "running"
        elif kind == "eval":
            tokens = record.get("tokens", self.last_step.get("tokens"))
            for key, value in (("step", record.get("step")), ("tokens", tokens),
                               ("val_loss", record.get("val_loss"))):
                self.evals[key].append(value)
        elif kind == "histograms":
            entry = histogram_entry(record)
            if entry is not None and (not self.histograms or entry.step > self.histograms[-1].step):
                self.histograms = thin_histograms([*self.histograms, entry])
        elif kind == "sample":
            self.samples.append((int(record.get("step", 0) or 0), str(record.get("text", ""))))
        elif kind == "start":
            # The trainer's effective config: the tokenizer fixes the vocabulary size.
            self.config = dict(record.get("config") or self.config)
            self.device = str(record.get("device", ""))
            self.status = "running"
        elif kind == "paused":
            self.status = "paused"
        elif kind == "resumed":
            self.status = "running"
        elif kind == "checkpoint":
            self.checkpoint = record.get("path") or self.checkpoint
        elif kind in ("done", "stopped", "error"):
            self.status = kind
            self.message = str(record.get("message", "") or "")

    def take_records_of(self, other: PretrainRun) -> None:
        """Take what another copy of this run (read from its folder) knows: status, curves, checkpoint;
        the user's view of it (name, colour, visibility) stays."""
        for name in ("config", "settings", "corpus", "status", "message", "checkpoint", "device", "samples",
                     "steps", "evals", "last_step", "continues"):
            setattr(self, name, getattr(other, name))

    def steps_done(self) -> int:
        """The last optimizer step the run recorded (0 before its first)."""
        steps = self.steps["step"].view()
        return int(steps[-1]) if len(steps) and steps[-1] == steps[-1] else 0

    def final_losses(self) -> tuple[float | None, float | None]:
        """(last train loss, last validation loss), None where there is none."""
        train = self.steps["train_loss"].view()
        val = self.evals["val_loss"].view()
        return (float(train[-1]) if len(train) else None, float(val[-1]) if len(val) else None)

    def to_state(self, max_points: int = 2000) -> dict[str, Any]:
        """A JSON-able summary (curves thinned to `max_points`) for the saved session."""
        def thin(series: dict[str, Series]) -> dict[str, list]:
            n = len(next(iter(series.values())))
            stride = max(1, math.ceil(n / max_points))
            return {k: s.tolist()[::stride] for k, s in series.items()}

        return {"run_id": self.run_id, "name": self.name, "config": self.config, "settings": self.settings,
                "corpus": self.corpus, "color": self.color, "status": self.status, "message": self.message,
                "checkpoint": self.checkpoint, "visible": self.visible, "continues": self.continues,
                "uid": self.uid, "samples": self.samples[-20:],
                "steps": thin(self.steps), "evals": thin(self.evals)}

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> PretrainRun:
        """Rebuild a run saved by `to_state` (bad entries raise KeyError/TypeError/ValueError)."""
        run = cls(int(data["run_id"]), str(data["name"]), dict(data["config"]), dict(data["settings"]),
                  data.get("corpus"), str(data.get("color", PALETTE[0])), str(data.get("status", "done")),
                  str(data.get("message", "")), data.get("checkpoint"),
                  visible=bool(data.get("visible", True)))
        continues = data.get("continues")
        run.continues = int(continues) if continues is not None else None
        run.uid = str(data["uid"]) if data.get("uid") else None
        run.samples = [(int(s), str(t)) for s, t in data.get("samples", [])]
        for target, saved in ((run.steps, data.get("steps", {})), (run.evals, data.get("evals", {}))):
            for key, values in saved.items():
                if key in target:
                    for v in values:
                        target[key].append(v)
        if run.status in ("starting", "running", "paused"):
            run.status = "stopped"
        return run


MAX_BLOCKS = 1024  # a health row longer than this is refused (no model here has more blocks)


def health_entry(record: dict[str, Any]) -> dict[str, Any]:
    """The health part of a step record, with every value a finite float or None."""
    def number(v) -> float | None:
        try:
            v = float(v)
        except (TypeError, ValueError):
            return None
        return v if math.isfinite(v) else None

    def row(values) -> list[float | None]:
        return [number(v) for v in list(values or [])[:MAX_BLOCKS]]

    return {"step": int(record["step"]), "grad_norm": number(record.get("grad_norm")),
            "block_grad_norms": row(record.get("block_grad_norms")),
            "update_ratios": row(record.get("update_ratios"))}


def health_arrays(entries: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(steps, global grad norms, block grad norms (n x blocks), update ratios (n x blocks)), NaN gaps."""
    n = len(entries)
    width = max((len(e["block_grad_norms"]) for e in entries), default=0)
    steps = np.array([e["step"] for e in entries], dtype=float)
    norms = np.array([np.nan if e["grad_norm"] is None else e["grad_norm"] for e in entries], dtype=float)
    grads, ratios = np.full((n, width), np.nan), np.full((n, width), np.nan)
    for i, e in enumerate(entries):
        for table, key in ((grads, "block_grad_norms"), (ratios, "update_ratios")):
            values = [np.nan if v is None else v for v in e[key]][:width]
            table[i, : len(values)] = values
    return steps, norms, grads, ratios


def describe_config(config: dict[str, Any], settings: dict[str, Any]) -> str:
    """A short run label: '4L 4H 128d ctx64 · lr 0.001 · bs 12'."""
    return (f"{config.get('n_layers')}L {config.get('n_heads')}H {config.get('emb_dim')}d "
            f"ctx{config.get('context_length')} · lr {settings.get('lr'):g} · "
            f"bs {settings.get('batch_size')}")


def config_differences(runs: list[PretrainRun]) -> list[tuple[str, list[Any]]]:
    """(field, value per run) for every config or setting that is not the same in all `runs`."""
    rows = []
    keys: list[str] = []
    for run in runs:
        for key in (*run.config, *run.settings):
            if key not in keys:
                keys.append(key)
    for key in keys:
        values = [run.config.get(key, run.settings.get(key)) for run in runs]
        if any(v != values[0] for v in values[1:]):
            rows.append((key, values))
    return rows
