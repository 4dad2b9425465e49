"""Qt-free helpers for the pretraining form: presets, validation, parameter count, memory vs device.

A thin adapter over explorer.core.gpt.spec so that the form's widgets stay simple, and the figures it shows
(163,009,536 for gpt2-124m) come from the one counting function in the core. Importing it imports no torch
(the form is built while torch loads); only the device's memory (`device_memory`, `training_warning`) asks
torch, inside those functions.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from explorer.core import files
from explorer.core.gpt import spec as gpt
from explorer.core.numbers import format_bytes as _format_bytes

# A model above this many parameters would take hours for a few hundred steps on a CPU.
CPU_PARAM_LIMIT = 30_000_000


def preset_names() -> list[str]:
    """The core's preset names, in their order (tiny, small, gpt2-124m)."""
    return list(gpt.PRESETS)


def preset_values(name: str) -> dict[str, Any] | None:
    """Config fields plus training defaults of a preset, or None for an unknown name."""
    if name not in gpt.PRESETS:
        return None
    values = dataclasses.asdict(gpt.PRESETS[name])
    if values.get("hidden_dim") == 4 * values.get("emb_dim", 0):
        values["hidden_dim"] = None  # shown as "4 × emb" (empty field) so emb_dim edits carry it along
    values.update(base_settings(name))
    return values


def preset_config(name: str) -> dict[str, Any]:
    """The GPTConfig fields of a preset, as a dict."""
    return dataclasses.asdict(gpt.PRESETS[name])


def base_settings(name: str) -> dict[str, Any]:
    """The core's training settings for a preset (TRAIN_PRESETS), as a dict; defaults otherwise."""
    return (gpt.TRAIN_PRESETS.get(name) or gpt.TrainSettings()).to_dict()


def make_config(config: dict[str, Any]) -> gpt.GPTConfig:
    """A GPTConfig from the form's dict (raises gpt.ConfigError for a bad one)."""
    return gpt.GPTConfig(**config).validate()


def config_problems(config: dict[str, Any]) -> dict[str, str]:
    """Field -> message for a config dict (empty when valid)."""
    try:
        return gpt.GPTConfig(**config).problems()
    except (TypeError, ValueError) as exc:
        return {"config": str(exc)}


def config_problem(config: dict[str, Any]) -> str | None:
    """The first problem of a config dict, or None."""
    problems = config_problems(config)
    return next(iter(problems.values()), None)


def parameter_counts(config: dict[str, Any]) -> dict[str, int]:
    """Parameters per part and `total` (core's count_parameters)."""
    return gpt.count_parameters(make_config(config))


def memory_needed(config: dict[str, Any], batch_size: int, dtype: str = "float32",
                  checkpoint_blocks: bool = False) -> dict[str, int]:
    """Bytes for weights, gradients, AdamW state, activations and `total` of one training step."""
    return gpt.memory_estimate(make_config(config), batch_size=batch_size, dtype=dtype,
                               checkpoint_blocks=checkpoint_blocks)


def format_bytes(n: float) -> str:
    """Human-readable binary size."""
    return _format_bytes(n)


def resolve_device(device: str) -> str:
    """'auto' -> the device the trainer will pick (cuda, then mps, then cpu)."""
    import torch

    if device != "auto":
        return device
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def device_memory(device: str) -> tuple[str, int | None, str | None]:
    """(resolved device, its memory in bytes or None, a problem message or None)."""
    import torch

    resolved = resolve_device(device)
    if resolved == "cuda":
        if not torch.cuda.is_available():
            return resolved, None, "no CUDA GPU on this machine: choose auto or cpu"
        return resolved, int(torch.cuda.get_device_properties(0).total_memory), None
    if resolved == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            return resolved, None, "no Apple MPS device on this machine: choose auto or cpu"
        recommended = getattr(getattr(torch, "mps", None), "recommended_max_memory", None)
        return resolved, int(recommended()) if callable(recommended) else _ram_bytes(), None
    return "cpu", _ram_bytes(), None


def _ram_bytes() -> int | None:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def training_warning(config: dict[str, Any], batch_size: int, device: str,
                     steps: int | None = None) -> tuple[str | None, bool]:
    """(a warning for the user or None, whether training should be refused)."""
    resolved, capacity, problem = device_memory(device)
    if problem:
        return problem, True
    total = parameter_counts(config)["total"]
    need = memory_needed(config, batch_size)["total"]
    if capacity is not None and need > capacity:
        return (f"needs about {format_bytes(need)} but this {resolved.upper()} has {format_bytes(capacity)}: "
                "it will not train on this machine (smaller batch, context or model)", True)
    if resolved == "cpu" and total > CPU_PARAM_LIMIT:
        return (f"{total:,} parameters will not train on this machine's CPU in any useful time "
                "(days for a few thousand steps): inspect it, train the tiny preset here, or use a GPU", True)
    if resolved == "cpu" and steps:
        seconds = estimated_cpu_seconds(config, batch_size, steps)
        if seconds > SLOW_RUN_S:
            return (f"roughly {seconds / 3600:.1f} hours for {steps:,} steps on this CPU (a rough estimate): "
                    "fewer steps, a smaller batch or model, or a GPU", False)
    return None, False


# Sustained training arithmetic of one CPU core with fused AdamW, measured with the tiny preset on the
# development machine (~5e10 FLOP/s); the estimate is meant to tell minutes from hours, no more.
CPU_FLOPS = 4e10
SLOW_RUN_S = 1800


def estimated_cpu_seconds(config: dict[str, Any], batch_size: int, steps: int) -> float:
    """A rough duration of a CPU run: 6 FLOPs per parameter and token, plus causal attention."""
    cfg = make_config(config)
    tokens = batch_size * cfg.context_length
    per_step = 6 * parameter_counts(config)["total"] * tokens
    per_step += 6 * cfg.n_layers * batch_size * cfg.context_length ** 2 * cfg.emb_dim
    return steps * per_step / CPU_FLOPS


def corpus_problem(path: str) -> str | None:
    """A quick look at a corpus file: empty, binary or not UTF-8 (reads at most 64 KiB)."""
    # stat first, never open a FIFO or a device: this runs on the GUI thread
    problem = files.regular_file_problem(path, "corpus")
    if problem:
        return problem
    try:
        size = os.path.getsize(path)
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        try:
            head = os.read(fd, 65536)
        finally:
            os.close(fd)
    except OSError as exc:
        return f"cannot read this file: {exc.strerror or exc}"
    if size == 0:
        return "this file is empty"
    if b"\x00" in head:
        return "this looks like a binary file, not text"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the 64 KiB boundary is fine; anything earlier is not UTF-8.
        if exc.start < len(head) - 4:
            return "this file is not UTF-8 text"
    if size < 1000:
        return f"only {size} bytes: a corpus needs at least a few thousand characters"
    return None
