"""A canonical dump of traces, and the recorded dump of the tracer before it was made faster (issue 21).

``canonical_dump()`` traces a small GPT training step (``explorer.core.gpt.model.GPT``), a few hand-made
callables (a custom autograd Function, an in-place op, an explicit gradient seed, forward only) and every
program of ``tests/corpus/`` through the expression language, and returns each trace's full ``to_json()``
(values, gradients, backward events, saved tensors, memory, passes). ``test_trace_golden.py`` compares it
with ``data/trace_golden.json.gz``, written by the eager tracer that recorded everything at once, so a
faster tracer must produce the same graph, values and gradients.

Regenerate (only when the trace's content is meant to change):
    PYTHONPATH=. python tests/core/trace_golden.py
The cases of ``mutations()`` were added later, recorded by the tracer that still copied every value when
made (``PYTHONPATH=. python tests/core/trace_golden.py --add-mutations`` adds them, keeping the rest).
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parent / "data" / "trace_golden.json.gz"
# The torch release the file was written with (the one `make test` installs): another release may name a
# grad_fn or save a tensor differently, which says nothing about our tracer.
WRITTEN_WITH = "2.13."
CORPUS = ROOT / "tests" / "corpus"
ELEMS = 32  # snapshot size: small enough for a small golden file, big enough to cover whole tensors


def gpt_step(layers: int = 2):
    """One training step's loss of the project's GPT, as the trace tab traces it."""
    from explorer.core.gpt.model import GPT, GPTConfig

    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=32, context_length=8, emb_dim=16, n_heads=2, n_layers=layers, drop_rate=0.0)
    model = GPT(cfg)
    idx = torch.randint(0, 32, (1, 8))
    targets = torch.roll(idx, -1, 1)

    def step():
        loss = model.loss(idx, targets)
        return loss, {"loss": loss}
    return step


class _Square(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 2 * x * g


def callables() -> dict:
    """name -> (fn, trace keyword arguments)."""
    torch.manual_seed(1)
    w = torch.randn(3, 4, requires_grad=True)
    x = torch.randn(5, 3)

    def custom():
        return _Square.apply(x @ w).sum()

    def inplace():
        h = (x @ w).clone()
        h.mul_(2)
        h2 = h * 3
        h2.add_(1.0)
        return (h2 * h2).mean(), {"h": h, "h2": h2}

    def shared_input():
        a = x @ w
        return (a * a + a.sin() + a.T.sum()).sum(), {"a": a}

    def seeded():
        return torch.tanh(x @ w)

    return {
        "custom": (custom, {}),
        "inplace": (inplace, {}),
        "shared_input": (shared_input, {}),
        "seeded": (seeded, {"grad_seed": torch.ones(5, 4) * 0.5}),
        "forward_only": (lambda: F.softmax(x @ w, dim=-1).sum(), {"backward": False}),
    }


def mutations() -> dict:
    """name -> (fn, after): values changed after an op made them, each way a program can (an in-place op on
    the output or on a view of it, a write through ``.data``, ``out=``, a paused call, numpy, and a change
    after the trace returned, made by ``after(result)``): each node must show the value it had when made."""
    from explorer.core.autograd.trace import unrecorded

    torch.manual_seed(2)
    w = torch.randn(3, 4, requires_grad=True)
    x = torch.randn(5, 3)
    kept: dict = {}

    def inplace_later():
        a = x @ w
        b = a * 2
        c = b.sum()
        b.add_(1.0)
        k = torch.arange(4.0) * 1.5  # a constant changed in place
        k.mul_(3)
        return c + (b * k).sum()

    def through_data():
        a = x @ w
        s = a.sin()
        a.data.mul_(0.5)
        a.data[0] = 5.0
        t = s * 1.0
        t.data = torch.zeros_like(t)  # a new storage: the old value is untouched
        return (s * a).sum() + t.sum()

    def through_view():
        h = (x @ w).clone()
        v = h[1]
        u = v * 1.0
        v.mul_(10)
        h.view(-1)[:3].add_(1.0)
        h.T[0].sub_(2.0)
        return (h * u.sum()).sum()

    def with_out():
        z = x.exp()
        y = z * 1.0
        torch.mul(x, 3, out=z)
        q = torch.empty(5, 3)
        r = torch.add(y, 1, out=q)
        return (x @ w).sum() + (z + r).sum()

    def paused():
        h = (x @ w) * 1.5  # nothing saves h or g before they change
        g = h + 0.5
        with unrecorded():
            h.detach().mul_(-1)
            g.detach().numpy()[0, 0] = 99.0
        return (h * g).sum()

    def after_the_trace():
        h = (x @ w).relu()
        kept["h"] = h
        m = h * 2
        kept["m"] = m
        return m.sum(), {"h": h}

    def change_after(_):
        with torch.no_grad():
            kept["h"].add_(100.0)
            kept["m"].data.mul_(-1)

    return {"mut_inplace_later": (inplace_later, None), "mut_data": (through_data, None),
            "mut_view": (through_view, None), "mut_out": (with_out, None), "mut_paused": (paused, None),
            "mut_after": (after_the_trace, change_after)}


def mutation_dump() -> dict:
    from explorer.core.autograd.trace import trace

    out = {}
    for name, (fn, after) in mutations().items():
        tr = trace(fn, max_snapshot_elems=ELEMS)
        if after is not None:
            after(tr)
        out[name] = tr.to_json()
    return json.loads(json.dumps(out))


def canonical_dump() -> dict:
    """name -> JSON form of its trace (a program: its iterations, losses and lines)."""
    from explorer.core.autograd.trace import trace, trace_program
    from explorer.core.lang.program import ExprError, parse

    out: dict = {}
    out["gpt"] = trace(gpt_step(), max_snapshot_elems=ELEMS).to_json()
    out["gpt_twice"] = _twice()
    for name, (fn, kw) in callables().items():
        out[name] = trace(fn, max_snapshot_elems=ELEMS, **kw).to_json()
    for path in sorted(CORPUS.glob("*.py")):
        torch.manual_seed(0)
        try:
            pt = trace_program(parse(path.read_text(encoding="utf-8")), max_snapshot_elems=ELEMS)
        except ExprError as exc:
            out[f"corpus/{path.stem}"] = {"error": str(exc)}
            continue
        out[f"corpus/{path.stem}"] = {
            "count": len(pt.iterations), "losses": pt.losses, "lines": pt.lines,
            # the first two and the last iteration: a training loop's 100 look alike
            "iterations": [t.to_json() for t in (pt.iterations[:2] + pt.iterations[2:][-1:])],
        }
    out.update(mutation_dump())
    return json.loads(json.dumps(out))  # tuples -> lists, as read back from the file


def _twice():
    """The same step traced twice: the second trace shows the gradients accumulated into .grad."""
    from explorer.core.autograd.trace import trace

    fn = gpt_step(1)
    trace(fn, max_snapshot_elems=ELEMS)
    return trace(fn, max_snapshot_elems=ELEMS).to_json()


def load_golden() -> dict:
    with gzip.open(GOLDEN, "rt", encoding="utf-8") as f:
        return json.load(f)


def main() -> int:
    if sys.argv[1:] == ["--add-mutations"]:  # add the mutation cases, keeping the recorded traces as they are
        data = load_golden()
        data.update(mutation_dump())
    else:
        data = canonical_dump()
    GOLDEN.parent.mkdir(exist_ok=True)
    with gzip.open(GOLDEN, "wt", encoding="utf-8", compresslevel=9) as f:
        json.dump(data, f, sort_keys=True, separators=(",", ":"))
    print(f"wrote {GOLDEN.relative_to(ROOT)}: {len(data)} traces, {GOLDEN.stat().st_size:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
