"""Checkpoints as one safetensors file: tensors (weights, AdamW state, RNG states) plus JSON metadata.

Nothing is ever unpickled, so a checkpoint cannot run code when it is opened; a pickle or a
`torch.save` zip handed in instead is recognised and refused with a clear message. Files are written
to a temporary name and renamed, so a crash mid-write never leaves a half-written checkpoint behind.
Every check happens before anything is returned: a bad file changes nothing.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from explorer.core.gpt.model import GPT, ConfigError, GPTConfig

FORMAT = "autograd-explorer-gpt"
VERSION = 1
SUFFIX = ".safetensors"
MAX_HEADER_BYTES = 100 * 1024 * 1024  # safetensors' own limit; a bigger claim means a corrupt file


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: missing, corrupt, truncated, mismatched or unsafe."""


@dataclass
class Checkpoint:
    """Everything a checkpoint holds, validated and on the CPU."""

    config: GPTConfig
    settings: dict
    tokenizer: dict
    step: int
    tokens: int
    model_state: dict[str, torch.Tensor]
    optimizer_state: dict | None = None  # in torch.optim's state_dict layout
    rng: dict[str, torch.Tensor] = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    extra: dict = field(default_factory=dict)


def model_tensors(model: GPT) -> dict[str, torch.Tensor]:
    """The model's state without the tied head's duplicate of the token embedding."""
    state = model.state_dict()
    if model.config.tie_weights:
        state.pop("out_head.weight", None)
    return state


def write_checkpoint(
    path: str | Path,
    *,
    config: GPTConfig,
    settings: dict,
    tokenizer: dict,
    step: int,
    tokens: int,
    model: GPT,
    optimizer: torch.optim.Optimizer | None = None,
    rng: dict[str, torch.Tensor] | None = None,
    history: list[dict] | None = None,
    extra: dict | None = None,
) -> Path:
    """Write a checkpoint atomically (temporary file, fsync, rename); returns the final path."""
    path = Path(path)
    tensors = {f"model/{k}": v.detach().cpu().contiguous() for k, v in model_tensors(model).items()}
    optim_meta = None
    if optimizer is not None:
        sd = optimizer.state_dict()
        scalars: dict[str, dict] = {}
        for idx, state in sd["state"].items():
            for key, value in state.items():
                if torch.is_tensor(value):
                    tensors[f"optim/{idx}/{key}"] = value.detach().cpu().contiguous()
                else:
                    scalars.setdefault(str(idx), {})[key] = value
        optim_meta = {"param_groups": sd["param_groups"], "scalars": scalars}
    for name, value in (rng or {}).items():
        tensors[f"rng/{name}"] = value.detach().cpu().contiguous()
    meta = {
        "config": config.to_dict(),
        "settings": settings,
        "tokenizer": tokenizer,
        "step": int(step),
        "tokens": int(tokens),
        "optimizer": optim_meta,
        "history": history or [],
        "extra": extra or {},
    }
    blob = st_save(tensors, metadata={"format": FORMAT, "version": str(VERSION), "meta": json.dumps(meta)})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(blob)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read and validate a checkpoint; CheckpointError with a clear message for anything wrong."""
    path = Path(path)
    if not path.exists() and path.with_name(path.name + SUFFIX).is_file():
        path = path.with_name(path.name + SUFFIX)  # "out/step-20" names out/step-20.safetensors
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a checkpoint file")
    raw = path.read_bytes()
    _refuse_pickles(path, raw)
    if len(raw) < 8:
        raise CheckpointError(f"{path} is truncated or not a checkpoint ({len(raw)} bytes)")
    (header_len,) = struct.unpack("<Q", raw[:8])
    if header_len > MAX_HEADER_BYTES:
        raise CheckpointError(f"{path} is not an Autograd Explorer checkpoint (unreadable header)")
    if 8 + header_len > len(raw):
        raise CheckpointError(
            f"{path} is truncated: its header needs {8 + header_len} bytes, the file has {len(raw)}"
        )
    try:
        header = json.loads(raw[8: 8 + header_len])
        metadata = header.get("__metadata__") or {}
        metadata.get("format")
    except (ValueError, AttributeError):
        raise CheckpointError(f"{path} is corrupt or not a checkpoint (bad header)") from None
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"{path} is a safetensors file but not an Autograd Explorer checkpoint")
    try:
        version = int(metadata.get("version", "0"))
    except ValueError:
        version = -1
    if version != VERSION:
        raise CheckpointError(f"{path} has checkpoint format version {version}; this program reads {VERSION}")
    try:
        ends = [int(max(t["data_offsets"])) for k, t in header.items() if k != "__metadata__"]
        data_end = max(ends, default=0)
    except (TypeError, KeyError, ValueError):
        raise CheckpointError(f"{path} is corrupt (malformed tensor table)") from None
    if 8 + header_len + data_end > len(raw):
        raise CheckpointError(f"{path} is truncated: {len(raw)} bytes, {8 + header_len + data_end} expected")
    try:
        tensors = st_load(raw)
        meta = json.loads(metadata["meta"])
    except Exception as exc:  # safetensors raises its own error type for malformed data
        raise CheckpointError(f"{path} is corrupt: {exc}") from None
    return _build(path, meta, tensors)


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[GPT, object, Checkpoint]:
    """The model (eval mode) and tokenizer of a checkpoint, for sampling and attention maps."""
    from explorer.core.gpt.data import CorpusError, tokenizer_from_dict

    ckpt = read_checkpoint(path)
    try:
        tokenizer = tokenizer_from_dict(ckpt.tokenizer)
    except CorpusError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    model = GPT(ckpt.config)
    load_model_state(model, ckpt.model_state)
    return model.to(device).eval(), tokenizer, ckpt


def load_model_state(model: GPT, state: dict[str, torch.Tensor]) -> None:
    """Copy validated weights into `model` (tied head restored from the embedding)."""
    missing, unexpected = model.load_state_dict(state, strict=False)
    allowed = {"out_head.weight"} if model.config.tie_weights else set()
    if set(missing) - allowed or unexpected:
        raise CheckpointError(f"weights do not fit the model: missing {missing}, unexpected {unexpected}")


# ---------------------------------------------------------------------------------------------


def _refuse_pickles(path: Path, raw: bytes) -> None:
    # torch.save writes a zip of pickles; older files are a bare pickle (protocol byte 0x80).
    if raw[:4] == b"PK\x03\x04" or (raw[:1] == b"\x80" and raw[8:9] != b"{"):  # safetensors: {} at byte 8
        raise CheckpointError(
            f"{path} is a pickle (torch.save) file, not an Autograd Explorer checkpoint; pickles can run "
            f"code when opened, so it was not loaded"
        )


def _build(path: Path, meta: dict, tensors: dict[str, torch.Tensor]) -> Checkpoint:
    try:
        config = GPTConfig.from_dict(meta["config"]).validate()
    except (ConfigError, TypeError, KeyError) as exc:
        raise CheckpointError(f"{path} has an invalid model config: {exc}") from None
    model_state = {k[6:]: v for k, v in tensors.items() if k.startswith("model/")}
    _check_shapes(path, config, model_state)
    optimizer_state = _optimizer_state(path, meta.get("optimizer"), tensors)
    rng = {k[4:]: v for k, v in tensors.items() if k.startswith("rng/")}
    try:
        return Checkpoint(
            config=config, settings=dict(meta["settings"]), tokenizer=dict(meta["tokenizer"]),
            step=int(meta["step"]), tokens=int(meta["tokens"]), model_state=model_state,
            optimizer_state=optimizer_state, rng=rng, history=list(meta.get("history", [])),
            extra=dict(meta.get("extra", {})),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path} is missing training state ({exc})") from None


def _check_shapes(path: Path, config: GPTConfig, state: dict[str, torch.Tensor]) -> None:
    with torch.device("meta"):
        expected = model_tensors(GPT(config))
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        raise CheckpointError(
            f"{path} does not match its config: missing tensors {missing[:5]}, unexpected tensors {extra[:5]}"
        )
    for name, ref in expected.items():
        if tuple(state[name].shape) != tuple(ref.shape):
            raise CheckpointError(
                f"{path} does not match its config: {name} has shape {tuple(state[name].shape)}, "
                f"the config needs {tuple(ref.shape)}"
            )
        if not state[name].is_floating_point():
            raise CheckpointError(f"{path}: tensor {name} is not floating point")


def _optimizer_state(path: Path, meta: dict | None, tensors: dict[str, torch.Tensor]) -> dict | None:
    if meta is None:
        return None
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optim/"):
            _, idx, name = key.split("/", 2)
            state.setdefault(int(idx), {})[name] = value
    for idx, scalars in (meta.get("scalars") or {}).items():
        state.setdefault(int(idx), {}).update(scalars)
    groups = meta.get("param_groups")
    if not isinstance(groups, list):
        raise CheckpointError(f"{path} has a malformed optimizer state")
    for group in groups:
        if isinstance(group.get("betas"), list):
            group["betas"] = tuple(group["betas"])
    return {"state": state, "param_groups": groups}
