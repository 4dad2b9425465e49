"""Checkpoints as one safetensors file: tensors (weights, AdamW state, RNG states) plus JSON metadata.

Nothing is ever unpickled, so a checkpoint cannot run code when it is opened; a pickle or a
`torch.save` zip handed in instead is recognised by its signature and refused with a clear message.
Files are read and written through `explorer.core.files` (regular files only, size limit, atomic
writes), so a crash mid-write never leaves a half-written checkpoint behind.
Every check happens before anything is returned: a bad file changes nothing.
"""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from explorer.core import files
from explorer.core.gpt.model import GPT, ConfigError, GPTConfig

FORMAT = "autograd-explorer-gpt"
VERSION = 1
SUFFIX = ".safetensors"
MAX_HEADER_BYTES = 100 * 1024 * 1024  # safetensors' own limit; a bigger claim means a corrupt file
MAX_LAYERS = 1024  # far above any preset; a bigger claim is an edited file, refused before building
RNG_NAMES = ("torch", "batch", "cuda")


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
    try:
        return files.write_atomic(path, blob)
    except files.FileProblem as exc:
        raise CheckpointError(str(exc)) from None


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read and validate a checkpoint; CheckpointError with a clear message for anything wrong.

    Only regular files are opened (a FIFO or /dev/zero is refused at once), the header is parsed and
    checked against the metadata before any tensor is decoded or any model is built.
    """
    path = Path(path)
    if not path.exists() and path.with_name(path.name + SUFFIX).is_file():
        path = path.with_name(path.name + SUFFIX)  # "out/step-20" names out/step-20.safetensors
    if not os.path.lexists(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        raw = files.read_bytes(path, "checkpoint")
    except files.FileProblem as exc:
        raise CheckpointError(f"checkpoint {path}: {str(exc).split(': ', 1)[-1]}") from None
    header = _safetensors_header(path, raw)
    metadata = header.get("__metadata__")
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise CheckpointError(f"{path} is a safetensors file but not an Autograd Explorer checkpoint")
    version = metadata.get("version")
    if version != str(VERSION):
        raise CheckpointError(f"{path} has checkpoint format version {str(version)[:20]}; "
                              f"this program reads {VERSION}")
    try:
        meta = json.loads(metadata.get("meta", ""))
    except (ValueError, TypeError, RecursionError):
        raise CheckpointError(f"{path} is corrupt: its metadata is not JSON") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path} is corrupt: its metadata is not a JSON object")
    table = {k: v for k, v in header.items() if k != "__metadata__"}
    config = _config(path, meta)
    expected = _expected_tensors(path, config, meta, table)
    _check_table(path, raw, table, expected)
    try:
        tensors = st_load(raw)
    except Exception as exc:  # safetensors raises its own error type for malformed data
        raise CheckpointError(f"{path} is corrupt: {str(exc)[:200]}") from None
    return _build(path, config, meta, tensors)


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


def _safetensors_header(path: Path, raw: bytes) -> dict:
    """The parsed safetensors header (8-byte little-endian length, then a JSON object), or a clear refusal.

    The format is decided by parsing that header, never by a first byte: a header length of 128, 384...
    starts the file with 0x80, which is also a pickle's protocol byte.
    """
    if len(raw) >= 8:
        (header_len,) = struct.unpack("<Q", raw[:8])
        if 2 <= header_len <= MAX_HEADER_BYTES and 8 + header_len <= len(raw) and raw[8:9] == b"{":
            try:
                header = json.loads(raw[8: 8 + header_len])
            except (ValueError, RecursionError):
                header = None
            if isinstance(header, dict):
                return header
            raise CheckpointError(f"{path} is corrupt or not a checkpoint (bad header)")
        if raw[8:9] == b"{" and 8 + header_len > len(raw):
            raise CheckpointError(
                f"{path} is truncated: its header needs {8 + header_len} bytes, the file has {len(raw)}")
    if raw[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        raise CheckpointError(f"{path} is a torch.save (zip of pickles) file, not an Autograd Explorer "
                              f"checkpoint; pickles can run code when opened, so it was not loaded")
    if len(raw) >= 2 and raw[0] == 0x80 and 2 <= raw[1] <= 5:
        raise CheckpointError(f"{path} is a pickle file, not an Autograd Explorer checkpoint; pickles can "
                              f"run code when opened, so it was not loaded")
    if len(raw) < 8:
        raise CheckpointError(f"{path} is truncated or not a checkpoint ({len(raw)} bytes)")
    raise CheckpointError(f"{path} is not an Autograd Explorer checkpoint (unreadable header)")


def _config(path: Path, meta: dict) -> GPTConfig:
    data = meta.get("config")
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} has an invalid model config: not a JSON object")
    try:
        config = GPTConfig.from_dict(data).validate()
    except (ConfigError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path} has an invalid model config: {str(exc)[:200]}") from None
    if config.n_layers > MAX_LAYERS:
        raise CheckpointError(f"{path} claims {config.n_layers} layers; at most {MAX_LAYERS} are accepted")
    return config


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _expected_tensors(path: Path, config: GPTConfig, meta: dict, table: dict) -> dict[str, tuple]:
    """name -> (dtype, shape) of every tensor the metadata allows; required names are the model's."""
    layers = {name.split(".")[1] for name in table if name.startswith("model/blocks.")}
    if layers != {str(i) for i in range(config.n_layers)}:
        raise CheckpointError(f"{path} does not match its config: {config.n_layers} layers in the config, "
                              f"{len(layers)} in the tensors")
    with torch.device("meta"):
        model = GPT(config)
    expected = {f"model/{k}": ("F32", tuple(v.shape)) for k, v in model_tensors(model).items()}
    params = [p for p in model.parameters() if p.requires_grad]
    ordered = [p for p in params if p.dim() >= 2] + [p for p in params if p.dim() < 2]
    optim = meta.get("optimizer")
    if optim is not None:
        _check_optimizer_meta(path, optim, [len([p for p in params if p.dim() >= 2]), len(ordered)])
        for idx, p in enumerate(ordered):
            for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
                expected[f"optim/{idx}/{key}"] = ("F32", tuple(p.shape))
            expected[f"optim/{idx}/step"] = ("F32", ())
    for name in RNG_NAMES:
        expected[f"rng/{name}"] = ("U8", None)  # a 1-D byte string of any length
    return expected


def _check_optimizer_meta(path: Path, optim, bounds: list[int]) -> None:
    bad = f"{path} has a malformed optimizer state"
    if not isinstance(optim, dict) or not isinstance(optim.get("param_groups"), list):
        raise CheckpointError(bad + " (param_groups)")
    groups = optim["param_groups"]
    ranges = [list(range(0, bounds[0])), list(range(bounds[0], bounds[1]))]
    if len(groups) != 2 or not all(isinstance(g, dict) for g in groups):
        raise CheckpointError(bad + " (param_groups must be two objects)")
    for group, want in zip(groups, ranges, strict=True):
        if group.get("params") != want:
            raise CheckpointError(bad + " (the parameters of a group do not match the model)")
        for key, value in group.items():
            if key == "params":
                continue
            if key == "betas":
                ok = (isinstance(value, list) and len(value) == 2
                      and all(_is_number(b) and 0 <= b < 1 for b in value))
            else:
                ok = value is None or isinstance(value, bool | str) or _is_number(value)
            if not ok or len(key) > 64:
                raise CheckpointError(bad + f" (param_groups field {key[:64]!r})")
        if not (_is_number(group.get("lr")) and group["lr"] >= 0):
            raise CheckpointError(bad + " (lr must be a number >= 0)")
    scalars = optim.get("scalars") or {}
    if not isinstance(scalars, dict):
        raise CheckpointError(bad + " (scalars)")
    for idx, values in scalars.items():
        if not (idx.isdigit() and int(idx) < bounds[1]) or not isinstance(values, dict):
            raise CheckpointError(bad + f" (scalars for parameter {idx[:20]!r})")
        for key, value in values.items():
            if key != "step" or not (_is_number(value) and value >= 0):
                raise CheckpointError(bad + f" (scalar {key[:64]!r})")


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


_ITEMSIZE = {"F32": 4, "U8": 1, "F16": 2, "BF16": 2, "F64": 8, "I64": 8, "I32": 4, "I8": 1, "BOOL": 1,
             "I16": 2, "U16": 2, "U32": 4, "U64": 8}


def _check_table(path: Path, raw: bytes, table: dict, expected: dict[str, tuple]) -> None:
    """Every tensor's name, dtype, shape and byte range, before anything is decoded."""
    (header_len,) = struct.unpack("<Q", raw[:8])
    data_len = len(raw) - 8 - header_len
    missing = sorted(k for k in expected if k.startswith("model/") and k not in table)
    unexpected = sorted(k for k in table if k not in expected)
    if missing or unexpected:
        raise CheckpointError(f"{path} does not match its config: missing tensors {missing[:5]}, "
                              f"unexpected tensors {[k[:80] for k in unexpected[:5]]}")
    for name, info in table.items():
        try:
            dtype, shape, (begin, end) = info["dtype"], info["shape"], info["data_offsets"]
            ok = (isinstance(dtype, str) and isinstance(shape, list) and all(_is_count(n) for n in shape)
                  and _is_count(begin) and _is_count(end) and begin <= end)
        except (TypeError, KeyError, ValueError):
            ok = False
        if not ok:
            raise CheckpointError(f"{path} is corrupt (malformed tensor table at {name[:80]})")
        if end > data_len:
            raise CheckpointError(f"{path} is truncated: {len(raw)} bytes, {8 + header_len + end} expected")
        want_dtype, want_shape = expected[name]
        if dtype != want_dtype:
            raise CheckpointError(f"{path}: tensor {name} is {dtype[:10]}, "
                                  f"checkpoints hold {want_dtype} only")
        if want_shape is None:
            if len(shape) != 1:
                raise CheckpointError(f"{path}: tensor {name} must be one-dimensional")
        elif tuple(shape) != want_shape:
            raise CheckpointError(f"{path} does not match its config: {name} has shape {tuple(shape)}, "
                                  f"the config needs {want_shape}")
        if end - begin != math.prod(shape) * _ITEMSIZE.get(dtype, 0):
            raise CheckpointError(f"{path} is corrupt (tensor {name} has the wrong number of bytes)")


def _build(path: Path, config: GPTConfig, meta: dict, tensors: dict[str, torch.Tensor]) -> Checkpoint:
    for key, kind in (("settings", dict), ("tokenizer", dict), ("history", list), ("extra", dict)):
        if not isinstance(meta.get(key, kind()), kind):
            raise CheckpointError(f"{path} has invalid metadata: {key} must be a JSON {kind.__name__}")
    if "settings" not in meta or "tokenizer" not in meta:
        raise CheckpointError(f"{path} is missing training state (settings or tokenizer)")
    for key in ("step", "tokens"):
        if not _is_count(meta.get(key)):
            raise CheckpointError(f"{path} has invalid metadata: {key} must be a whole number >= 0, "
                                  f"got {str(meta.get(key))[:40]}")
    if not all(isinstance(r, dict) for r in meta.get("history", [])):
        raise CheckpointError(f"{path} has invalid metadata: history must hold objects")
    model_state = {k[6:]: v for k, v in tensors.items() if k.startswith("model/")}
    rng = {k[4:]: v for k, v in tensors.items() if k.startswith("rng/")}
    optimizer_state = None
    optim = meta.get("optimizer")
    if optim is not None:
        state: dict[int, dict] = {}
        for key, value in tensors.items():
            if key.startswith("optim/"):
                _, idx, name = key.split("/", 2)
                state.setdefault(int(idx), {})[name] = value
        for idx, scalars in (optim.get("scalars") or {}).items():
            state.setdefault(int(idx), {}).update(scalars)
        for idx, entry in state.items():
            if not {"step", "exp_avg", "exp_avg_sq"} <= set(entry):
                raise CheckpointError(f"{path} has a malformed optimizer state "
                                      f"(parameter {idx} is incomplete)")
        groups = [dict(g) for g in optim["param_groups"]]
        for group in groups:
            if isinstance(group.get("betas"), list):
                group["betas"] = tuple(group["betas"])
        optimizer_state = {"state": state, "param_groups": groups}
    return Checkpoint(
        config=config, settings=dict(meta["settings"]), tokenizer=dict(meta["tokenizer"]),
        step=meta["step"], tokens=meta["tokens"], model_state=model_state,
        optimizer_state=optimizer_state, rng=rng, history=list(meta.get("history", [])),
        extra=dict(meta.get("extra", {})),
    )
