"""Benchmark: what recording the saved tensors (issue 13) costs the tracer, and what checkpointing saves.

Run: ``.venv/bin/python bench/saved_bench.py`` (``--repeat N`` for more samples). Prints, per graph, the
median time of ``trace(fn)`` with saved-tensor recording and without it (the baseline, in the same
process: torch's saved-tensor hooks switched off, which the tracer then skips), the nodes and the bytes
saved; then, for one GPT training step, the activations saved and the step time with and without
per-block activation checkpointing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from explorer.core.autograd.trace import trace  # noqa: E402
from explorer.core.gpt.model import GPT, GPTConfig, format_bytes  # noqa: E402
from explorer.core.lang.examples import SEED_SOURCE  # noqa: E402
from explorer.core.lang.program import parse  # noqa: E402


def _median_ms(*fns, repeat: int) -> list[float]:
    """Median milliseconds of each callable, run in turns so that a busy machine slows all alike."""
    for fn in fns:
        fn()  # warm-up
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeat):
        for fn, out in zip(fns, times, strict=True):
            t = time.perf_counter()
            fn()
            out.append((time.perf_counter() - t) * 1000)
    return [statistics.median(t) for t in times]


def _without_saved(fn):
    def run():
        torch._C._autograd._saved_tensors_hooks_disable("bench baseline: no saved-tensor recording")
        try:
            return fn()
        finally:
            torch._C._autograd._saved_tensors_hooks_enable()
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(1)  # steadier figures on a shared machine
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=128, context_length=64, emb_dim=128, n_heads=4, n_layers=4, drop_rate=0.0)
    model = GPT(cfg).train()
    idx = torch.randint(0, 128, (4, 64))
    graphs = {
        "seed example": parse(SEED_SOURCE).callable(),
        "GPT tiny, 4 × 64 tokens": lambda: model.loss(idx, idx),
    }
    print(f"{'graph':28} {'nodes':>6} {'saved':>10} {'trace ms':>9} {'baseline ms':>12} {'overhead':>9}")
    for name, fn in graphs.items():
        def traced(fn=fn):
            model.zero_grad(set_to_none=True)
            return trace(fn)
        tr = traced()
        with_ms, base_ms = _median_ms(traced, _without_saved(traced), repeat=args.repeat)
        print(f"{name:28} {len(tr.nodes):>6} {format_bytes(tr.saved_memory.activations):>10} "
              f"{with_ms:>9.1f} {base_ms:>12.1f} {with_ms / base_ms - 1:>+9.0%}")
    print()
    print(f"{'GPT tiny training step':28} {'saved':>10} {'step ms':>9}")
    saved, steps = {}, {}
    for ckpt in (False, True):
        model.set_checkpointing(ckpt)
        saved[ckpt] = trace(lambda: model.loss(idx, idx), backward=False).saved_memory.activations

        def step(ckpt=ckpt):
            model.set_checkpointing(ckpt)
            model.zero_grad(set_to_none=True)
            model.loss(idx, idx).backward()
        steps[ckpt] = step
    times = _median_ms(steps[False], steps[True], repeat=args.repeat)
    for ckpt, ms in zip((False, True), times, strict=True):
        label = "checkpointed blocks" if ckpt else "plain"
        print(f"{label:28} {format_bytes(saved[ckpt]):>10} {ms:>9.1f}")


if __name__ == "__main__":
    main()
