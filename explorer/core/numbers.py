"""The one number formatter: how every number and tensor snapshot of the app is written as text.

Graph cards, the status line, the inspector, chain rules, the CLI and the phase texts all call these,
so one value never reads differently in two places.
"""

from __future__ import annotations

import math
import re

import numpy as np


def fmt_number(v: float, integer: bool = False) -> str:
    """A short human form of a number: 4 decimals for ordinary magnitudes, else scientific."""
    if integer:
        return str(int(v))
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    a = abs(v)
    if a == 0:
        return "0"
    if 1e-3 <= a < 1e4:
        text = f"{v:.4f}".rstrip("0").rstrip(".")
        return text if text not in ("-0", "") else "0"
    return f"{v:.3e}"


def format_bytes(n: float) -> str:
    """Human-readable size with binary units: 1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def fmt_percent(p: float) -> str:
    """A probability or share as a short percentage for a small cell: `60%`, `2.5%`, `<0.1%` (NaN as is)."""
    p = float(p)
    if not math.isfinite(p):
        return str(p)
    percent = 100.0 * p
    if percent >= 9.95:
        return f"{percent:.0f}%"
    if percent >= 0.05:
        return f"{percent:.1f}%"
    return "0%" if percent <= 0 else "<0.1%"


def fmt_fixed(v: float) -> str:
    """A number in a formula or a report: always 4 decimals (`0.0750`, `1.0000`) so that columns and
    products line up, scientific outside 1e-3..1e5."""
    v = float(v)
    if v == 0 or 1e-3 <= abs(v) < 1e5 or not math.isfinite(v):
        return f"{v:.4f}"
    return f"{v:.3e}"


def fmt_significant(v: float) -> str:
    """A number to 4 significant digits (`0.08519`, `-1.089`): the graph export's labels."""
    return f"{float(v):.4g}"


def fmt_array(arr, k: int = 4) -> str:
    """A short rendering of an array: its number for one element, else up to `k` leading values and,
    when there are more, the largest magnitude (leading values can all be dead ReLU zeros)."""
    if arr is None:
        return "—"
    flat = np.asarray(arr, dtype=np.float64).reshape(-1)
    if flat.size == 1:
        return fmt_number(float(flat[0]))
    head = ", ".join(fmt_number(float(v)) for v in flat[:k])
    if flat.size <= k:
        return f"[{head}]"
    return f"[{head}, …] (max |·| {fmt_number(float(np.abs(flat).max()))})"


def fmt_peak(arr, short: bool = False) -> str:
    """A number as text; an array as its shape and largest |entry| (`short`: the latter only)."""
    a = np.asarray(arr, dtype=np.float64)
    if a.size == 1:
        return fmt_number(float(a.reshape(-1)[0]))
    peak = f"max |·| {fmt_number(float(np.max(np.abs(a))))}"
    return peak if short else f"{'×'.join(map(str, a.shape))}, {peak}"


def fmt_formula(snap) -> str:
    """A snapshot inside a formula: its number (fixed decimals) for one element, else its shape."""
    if snap is None:
        return "?"
    if snap.numel == 1 and snap.data is not None:
        return fmt_fixed(float(snap.item()))
    return f"[tensor {tuple(snap.shape)}]"


def is_integer_dtype(dtype: str) -> bool:
    """True for torch/numpy integer and bool dtype names."""
    d = str(dtype).replace("torch.", "")
    return d.startswith(("int", "uint", "long", "short", "bool"))


_SHORT_DTYPES = {"float32": "f32", "float64": "f64", "float16": "f16", "bfloat16": "bf16", "int64": "i64",
                 "int32": "i32", "bool": "bool"}


def snapshot_summary(snap) -> str:
    """One line for a Snapshot: the number for one element, else `2×3 float32`."""
    if snap is None:
        return ""
    shape = tuple(getattr(snap, "shape", ()) or ())
    numel = int(getattr(snap, "numel", 1) or 0)
    dtype = str(getattr(snap, "dtype", "")).replace("torch.", "")
    if numel == 1:
        try:
            return fmt_number(float(snap.item()), is_integer_dtype(dtype))
        except Exception:  # a snapshot without data: show its type rather than fail the paint
            return dtype
    dims = "×".join(str(s) for s in shape) if shape else "scalar"
    return f"{dims} {_SHORT_DTYPES.get(dtype, dtype)}"


def snapshot_matrix(snap) -> np.ndarray | None:
    """The snapshot's data as a 2-D float array for grids and heatmaps (None when absent)."""
    data = getattr(snap, "data", None)
    if data is None:
        return None
    arr = np.asarray(data, dtype=np.float64)
    if arr.ndim == 0:
        return arr.reshape(1, 1)
    if arr.ndim == 1:
        return arr.reshape(1, -1)
    return arr.reshape(-1, arr.shape[-1])


def max_abs_text(snap) -> str:
    """Largest absolute entry of a tensor snapshot, as text."""
    m = snapshot_matrix(snap)
    if m is None or not m.size:
        return "?"
    peak = float(np.max(np.abs(m)))
    return f"{peak:.3g}" if 1e-3 <= peak < 1e4 else fmt_number(peak)


# -- numbers a person typed (lessons, predict-then-reveal) ----------------------------------------

def within(value: float, target: float, tolerance: float | None, relative: bool, whole: bool) -> bool:
    """Whether `value` is close enough to `target` (exact for whole-number facts without a tolerance)."""
    if not math.isfinite(value):
        return False
    if tolerance is None:
        if whole:
            return value == target
        return abs(value - target) <= max(0.01 * abs(target), 5e-4)
    limit = tolerance * abs(target) if relative else tolerance
    return abs(value - target) <= limit


_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def parse_number(text: str) -> float | None:
    """A number a student typed: `-0.0898`, `−0.09`, `163,009,536`, `1.6e8`, `3 %`; None when it is none."""
    t = (text or "").strip().replace("−", "-").replace("\u2009", "").replace("_", "").replace(" ", "")
    t = t.replace(",", "")
    percent = t.endswith("%")
    t = t.rstrip("%")
    if not _NUMBER.match(t):
        return None
    value = float(t)
    return value / 100 if percent else value
