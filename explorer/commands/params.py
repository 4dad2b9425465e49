"""`python -m explorer params`: parameter count per part and memory estimate of a GPT configuration."""

from __future__ import annotations

import argparse
import json

from explorer.cli import UserInputError
from explorer.commands.train import add_field_flags, given_fields
from explorer.core.gpt.model import (
    PARTS,
    PRESETS,
    ConfigError,
    GPTConfig,
    count_parameters,
    format_bytes,
    memory_estimate,
)
from explorer.core.gpt.train import TRAIN_PRESETS

HELP = "Count a GPT's parameters per part (embeddings, attention, MLP, norms, head) and estimate its memory."

DTYPES = ("float32", "bfloat16")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """--preset, --json, --batch-size for the activation estimate, and one flag per config field."""
    parser.add_argument("--preset", default="gpt2-124m", choices=list(PRESETS), help="default: gpt2-124m")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="sequences per batch for the activation estimate (default: the preset's)")
    add_field_flags(parser, GPTConfig, "model")


def report(preset: str, config: GPTConfig, batch_size: int) -> dict:
    """Everything the command prints, as a JSON-able dict."""
    counts = count_parameters(config)
    memory = {dtype: memory_estimate(config, batch_size=batch_size, dtype=dtype) for dtype in DTYPES}
    return {"preset": preset, "config": config.to_dict(), "total": counts["total"], "parameters": counts,
            "memory": {"batch_size": batch_size, "context_length": config.context_length, **memory}}


def run(args: argparse.Namespace) -> int:
    """Print the report; UserInputError for an invalid configuration."""
    try:
        config = PRESETS[args.preset].replace(**given_fields(args, GPTConfig)).validate()
    except ConfigError as exc:
        raise UserInputError(str(exc)) from None
    batch = args.batch_size if args.batch_size is not None else TRAIN_PRESETS[args.preset].batch_size
    if batch < 1:
        raise UserInputError(f"--batch-size must be at least 1, got {batch}")
    data = report(args.preset, config, batch)
    if args.json:
        print(json.dumps(data))
        return 0
    c = config
    print(f"{args.preset}: vocab {c.vocab_size}, context {c.context_length}, emb {c.emb_dim}, "
          f"hidden {c.hidden_dim}, {c.n_heads} heads, {c.n_layers} layers, dropout {c.drop_rate}, "
          f"qkv bias {'yes' if c.qkv_bias else 'no'}, head {'tied' if c.tie_weights else 'untied'}")
    print()
    counts = data["parameters"]
    for part in PARTS:
        print(f"  {part:<12}{counts[part]:>16,}")
    print(f"  {'total':<12}{counts['total']:>16,}")
    print()
    print(f"memory to train (batch {batch} x context {c.context_length}, AdamW):")
    print(f"  {'':<12}" + "".join(f"{d:>14}" for d in DTYPES))
    for key in ("weights", "gradients", "optimizer", "activations", "total"):
        label = "activations*" if key == "activations" else key
        print(f"  {label:<12}" + "".join(f"{format_bytes(data['memory'][d][key]):>14}" for d in DTYPES))
    note = " (with unfused attention's T x T matrices, as dropout is on)" if c.drop_rate else ""
    print(f"  * the tensors autograd keeps for backward{note}; within ~10% of a measured CPU run")
    if TRAIN_PRESETS[args.preset].tokenizer == "char":
        _char_vocab_note(config)
    return 0


def _char_vocab_note(config: GPTConfig) -> None:
    """`train` with the char tokenizer sets vocab_size from the corpus: say what that gives."""
    from explorer.core.gpt.data import CorpusError, char_vocab_size

    try:
        chars = char_vocab_size()
    except CorpusError:
        return
    trained = count_parameters(config.replace(vocab_size=chars))["total"]
    print(f"\nnote: `train` uses the char tokenizer here, so vocab_size comes from the corpus (--tokenizer "
          f"bpe makes it a setting): the built-in one has {chars} characters, giving {trained:,} parameters")
