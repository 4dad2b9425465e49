"""bf16 autocast against float32 on the same run: the loss curves side by side, and the speed of each.

    python bench/precision_bench.py [--steps 1500] [--eval-every 250] [--threads 1] [--device cpu]

Both runs start from the same seed, weights and batches (nanoGPT's CPU baby GPT on the built-in corpus,
batch 12), so the only difference is the precision of the matrix products. Printed: train loss (mean
of the last 50 steps) and validation loss at each evaluation, their differences, and tokens/s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from explorer.core.gpt.model import preset  # noqa: E402
from explorer.core.gpt.train import Trainer, TrainSettings  # noqa: E402

BABY_GPT = {"n_layers": 4, "n_heads": 4, "emb_dim": 128, "context_length": 64, "drop_rate": 0.0}


def train(dtype: str, args) -> dict:
    """One run: its eval records, a smoothed train loss at each eval, and its median tokens/s."""
    settings = TrainSettings(steps=args.steps, batch_size=12, lr=1e-3, warmup_steps=100,
                             eval_every=args.eval_every, eval_batches=20, sample_every=0,
                             device=args.device, dtype=dtype, seed=1337, threads=args.threads)
    trainer = Trainer(preset("tiny", **BABY_GPT), settings)
    losses: list[float] = []
    speeds: list[float] = []
    evals: dict[int, dict] = {}
    started = time.perf_counter()
    for record in trainer.run():
        if record["type"] == "step":
            losses.append(record["train_loss"])
            speeds.append(record["tokens_per_s"])
        elif record["type"] == "eval":
            evals[record["step"]] = {"val_loss": record["val_loss"],
                                     "train_loss": statistics.fmean(losses[-50:]) if losses else None}
    return {"dtype": str(trainer.autocast_dtype or "float32"), "evals": evals,
            "tokens_per_s": statistics.median(speeds), "wall_s": time.perf_counter() - started}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    runs = {name: train(name, args) for name in ("float32", "bfloat16")}
    if args.json:
        print(json.dumps(runs))
        return 0
    ref, low = runs["float32"], runs["bfloat16"]
    print(f"baby GPT {BABY_GPT}, batch 12, {args.steps} steps, {torch.get_num_threads()} thread(s), "
          f"device {args.device}, torch {torch.__version__}")
    print(f"{'step':>6}{'fp32 val':>10}{'bf16 val':>10}{'diff':>9}"
          f"{'fp32 train':>12}{'bf16 train':>12}{'diff':>9}")
    worst = 0.0
    for step, r in ref["evals"].items():
        b = low["evals"][step]
        dv = b["val_loss"] - r["val_loss"]
        dt = (b["train_loss"] - r["train_loss"]) if r["train_loss"] is not None else 0.0
        if step:
            worst = max(worst, abs(dv) / r["val_loss"])
        tr = f"{r['train_loss']:>12.4f}{b['train_loss']:>12.4f}{dt:>+9.4f}" if r["train_loss"] else ""
        print(f"{step:>6}{r['val_loss']:>10.4f}{b['val_loss']:>10.4f}{dv:>+9.4f}{tr}")
    print(f"largest relative difference of the validation loss after step 0: {worst:.2%}")
    print(f"tokens/s (median of the step records): float32 {ref['tokens_per_s']:,.0f}, "
          f"bfloat16 {low['tokens_per_s']:,.0f} ({low['tokens_per_s'] / ref['tokens_per_s']:.2f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
