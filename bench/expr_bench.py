"""Benchmark of the expression language: parse, run, gradient checks and hostile-input rejection.

Run: ``.venv/bin/python bench/expr_bench.py [--repeat N]``. Prints medians. The baseline for running a
program is the same computation written directly in torch, measured in the same run, so the printed
ratio is the language's overhead (checks, binding, error handling) on this machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from explorer.core.autograd.gradcheck import chain_rules, compare_grads  # noqa: E402
from explorer.core.autograd.trace import trace  # noqa: E402
from explorer.core.lang.program import ExprError, parse  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "assets" / "examples"

HOSTILE = {
    "__import__('os')...": "x = __import__('os').system('true')",
    "().__class__...": "x = ().__class__.__bases__[0].__subclasses__()",
    "lambda": "f = lambda: 1",
    "comprehension": "x = [i for i in arange(3)]",
    "f-string": 'x = f"{1}"',
    "9**9**9**9": "x = 9**9**9**9",
    "10,000 nested parens": "x = " + "(" * 10_000 + "1" + ")" * 10_000,
    "zeros(100000, 100000)": "x = zeros(100000, 100000)",
    "20,000 characters": "x = " + "+".join(["1"] * 9_990),
}


def median_ms(fn, repeat: int) -> float:
    """Median wall time of fn() in milliseconds, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def _seed_direct():
    x, y = torch.tensor(1.1), torch.tensor(1.0)
    w = torch.tensor(2.2, requires_grad=True)
    b = torch.tensor(0.0, requires_grad=True)
    return F.binary_cross_entropy(torch.sigmoid(w * x + b), y)


def _rejected(source: str) -> None:
    try:
        parse(source)
    except ExprError:
        return
    raise SystemExit(f"not rejected: {source[:40]}")


def main() -> None:
    """Print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=50)
    n = ap.parse_args().repeat
    seed_src = (EXAMPLES / "seed_sigmoid_bce.expr").read_text(encoding="utf-8")
    mlp_src = (EXAMPLES / "one_hidden_layer.expr").read_text(encoding="utf-8")
    seed, mlp = parse(seed_src), parse(mlp_src)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of {n} runs")
    print("\n-- seed example (7 statements)")
    parse_ms = median_ms(lambda: parse(seed_src), n)
    run_ms = median_ms(seed.run, n)
    direct_ms = median_ms(_seed_direct, n)
    print(f"parse                         {parse_ms:8.3f} ms")
    print(f"Program.run                   {run_ms:8.3f} ms")
    ratio = run_ms / direct_ms
    print(f"same ops in plain torch       {direct_ms:8.3f} ms   (baseline; run/baseline = {ratio:.1f}x)")
    print(f"compare_grads (2 params)      {median_ms(lambda: compare_grads(seed), n):8.3f} ms")
    tr_ms = median_ms(lambda: trace(seed.callable()), n)
    print(f"trace(program.callable())     {tr_ms:8.3f} ms")
    tr = trace(seed.callable())
    chain_ms = median_ms(lambda: [chain_rules(tr, i) for i in tr.nodes], n)
    print(f"chain_rules on every node     {chain_ms:8.3f} ms")

    print("\n-- one hidden layer example (76 parameter elements)")
    print(f"Program.run                   {median_ms(mlp.run, n):8.3f} ms")
    fd_ms = median_ms(lambda: compare_grads(mlp), max(3, n // 10))
    print(f"compare_grads (152 FD runs)   {fd_ms:8.3f} ms")

    print("\n-- hostile input, time to reject (parse raises ExprError, nothing runs)")
    for label, source in HOSTILE.items():
        print(f"{label:30s}{median_ms(lambda s=source: _rejected(s), n):8.3f} ms")


if __name__ == "__main__":
    main()
