"""Benchmark of the graph pipeline: trace, layout, (optionally) scene build, against Graphviz dot.

Run: ``.venv/bin/python bench/graph_bench.py`` (``--repeat N`` for more samples, ``--no-dot`` to skip dot,
``--stress`` to add random DAGs). Prints one row per graph: node/edge counts, median times in ms and edge
crossings, all counted by ``explorer.core.graph.layout.count_crossings`` on each method's own drawing
(dot's splines sampled at its ranks, ogdf's bends read back from GML). Columns: ``trace`` = ``trace(fn)``
(forward + backward recorded); ``layout`` = ``layered_layout(trace.graph)``; ``scene`` =
``explorer.ui.graph.render.build_scene(trace)`` with every module expanded, which runs its own collapse and
layout, so trace + scene is the whole path from a callable to a drawn canvas; ``dot`` = ``dot -Tplain``
as a subprocess; ``ogdf`` = ogdf-py's SugiyamaLayout call alone (no bend points).
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from explorer.core.autograd.trace import trace  # noqa: E402
from explorer.core.graph.layout import count_crossings, layered_layout, ogdf_sugiyama  # noqa: E402

# ------------------------------------------------------------------------------------------ graphs


class Block(nn.Module):
    """Pre-norm transformer block with hand-written causal attention (more nodes than SDPA)."""

    def __init__(self, d, heads, ctx):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc, self.out = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)
        self.register_buffer("mask", torch.tril(torch.ones(ctx, ctx)).view(1, 1, ctx, ctx))

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(C, dim=2)
        q = q.view(B, T, self.heads, C // self.heads).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.heads, C // self.heads).transpose(1, 2)
        v = v.view(B, T, self.heads, C // self.heads).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = F.softmax(att.masked_fill(self.mask[:, :, :T, :T] == 0, float("-inf")), dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        x = x + self.proj(y)
        return x + self.out(F.gelu(self.fc(self.ln2(x))))


class TinyGPT(nn.Module):
    """A GPT small enough to trace in milliseconds; ``layers`` sets the graph size (~75 nodes each)."""

    def __init__(self, vocab=32, ctx=8, d=16, heads=2, layers=2):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, d), nn.Embedding(ctx, d)
        self.blocks = nn.ModuleList(Block(d, heads, ctx) for _ in range(layers))
        self.ln_f, self.head = nn.LayerNorm(d), nn.Linear(d, vocab, bias=False)

    def forward(self, idx, targets):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
        for block in self.blocks:
            x = block(x)
        logits = self.head(self.ln_f(x))
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


def chain_fn(n):
    """A chain of n alternating ops on one scalar parameter."""
    w = torch.tensor(0.5, requires_grad=True)

    def fn():
        h = w
        for i in range(n):
            h = torch.sin(h) if i % 2 else h * 1.01
        return h
    return fn


def mlp_fn(inputs, hidden, depth, classes):
    """An MLP (nn.Sequential of Linear/Tanh, ``depth`` hidden layers) and its cross-entropy loss."""
    torch.manual_seed(0)
    widths = [inputs] + [hidden] * depth + [classes]
    layers = []
    for a, b in zip(widths[:-1], widths[1:], strict=True):
        layers += [nn.Linear(a, b), nn.Tanh()]
    model = nn.Sequential(*layers[:-1])
    X, y = torch.randn(16, inputs), torch.randint(0, classes, (16,))
    return lambda: F.cross_entropy(model(X), y)


def gpt_fn(layers):
    """One training step's loss of a TinyGPT with ``layers`` blocks."""
    torch.manual_seed(0)
    model = TinyGPT(layers=layers)
    idx = torch.randint(0, 32, (2, 8))
    return lambda: model(idx, torch.roll(idx, -1, 1))


def core_gpt_fn(layers):
    """One training step's loss of ``explorer.core.gpt.model.GPT`` (SDPA attention), or None."""
    try:
        from explorer.core.gpt.model import GPT, GPTConfig
    except ImportError:
        return None
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=32, context_length=8, emb_dim=16, n_heads=2, n_layers=layers, drop_rate=0.0)
    model = GPT(cfg)
    idx = torch.randint(0, 32, (2, 8))
    return lambda: F.cross_entropy(model(idx).flatten(0, 1), torch.roll(idx, -1, 1).flatten())


def cases():
    """(name, zero-argument callable) for graphs of about 10, 100, 400, 1,000 and 3,000 nodes."""
    rows = [
        ("chain", chain_fn(10)),
        ("mlp", mlp_fn(8, 16, 23, 4)),
        ("gpt-9", gpt_fn(9)),
        ("gpt-24", gpt_fn(24)),
        ("gpt-72", gpt_fn(72)),
        ("chain", chain_fn(3000)),
    ]
    core = core_gpt_fn(12)
    if core is not None:
        rows.insert(3, ("core.gpt-12", core))
    return rows


# ------------------------------------------------------------------------------------------ other layouts


def dot_layout(graph):
    """Graphviz dot (LR) on the same graph: (seconds, positions, bend samples), or None without dot."""
    exe = shutil.which("dot")
    if exe is None:
        return None
    names = {n: f"v{i}" for i, n in enumerate(graph.nodes)}
    back = {v: k for k, v in names.items()}
    lines = ["digraph G {", "rankdir=LR;"]
    lines.append('node [shape=box, width=1.1, height=0.45, fixedsize=true, label=""];')
    lines += [f"{names[n]};" for n in graph.nodes]
    lines += [f"{names[u]} -> {names[v]};" for u, v in graph.edges]
    lines.append("}")
    t0 = time.perf_counter()
    out = subprocess.run([exe, "-Tplain"], input="\n".join(lines), capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - t0
    positions, bends = {}, {}
    for line in out.stdout.splitlines():
        tok = line.split()
        if tok and tok[0] == "node":
            positions[back[tok[1]]] = (float(tok[2]), float(tok[3]))
        elif tok and tok[0] == "edge":
            k = int(tok[3])
            ctrl = [(float(tok[4 + 2 * i]), float(tok[5 + 2 * i])) for i in range(k)]
            bends[(back[tok[1]], back[tok[2]])] = _bezier_samples(ctrl)
    return seconds, positions, bends


def _bezier_samples(ctrl, steps=8):
    """Points along a piecewise cubic Bezier (dot's spline), its two ends left out."""
    pts = []
    for i in range(0, len(ctrl) - 3, 3):
        p0, p1, p2, p3 = ctrl[i:i + 4]
        for j in range(1 if i else 0, steps + 1):
            t = j / steps
            a, b, c, d = (1 - t) ** 3, 3 * t * (1 - t) ** 2, 3 * t * t * (1 - t), t ** 3
            pts.append(tuple(a * p0[k] + b * p1[k] + c * p2[k] + d * p3[k] for k in (0, 1)))
    return pts[1:-1]


def ogdf_layout(graph):
    """ogdf-py's SugiyamaLayout: (seconds for the layout alone, positions, bends), or None without ogdf."""
    try:
        t0 = time.perf_counter()
        ogdf_sugiyama(graph, bends=False)
        seconds = time.perf_counter() - t0
    except ImportError:
        return None
    positions, bends = ogdf_sugiyama(graph, bends=True)  # bends come back through a GML file: untimed
    return seconds, positions, bends


def scene_builder():
    """``explorer.ui.graph.render.build_scene`` (offscreen Qt), or None when the UI module is missing."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    try:
        from explorer.ui.graph.render import build_scene
    except ImportError:
        return None
    return build_scene


def all_expanded(tr):
    """Every module path (and roll-up key) expanded, so the scene draws every traced node."""
    from explorer.core.graph.layout import collapse

    expanded: set[str] = set()
    while True:
        g = collapse(tr, expanded)
        paths = {d["path"] for _, d in g.nodes(data=True) if d.get("kind") == "module"}
        if not paths - expanded:
            return expanded
        expanded |= paths


# ------------------------------------------------------------------------------------------ main


def measure(name, fn, repeat, use_dot, use_ogdf, build_scene):
    """Median timings (ms) and crossing counts for one graph."""
    trace(fn, max_snapshot_elems=64)  # warm-up: first calls pay for lazy initialisation in torch
    t_trace, t_layout, t_scene = [], [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        tr = trace(fn)
        t_trace.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        lay = layered_layout(tr.graph)
        t_layout.append(time.perf_counter() - t0)
        if build_scene is not None:
            expanded = all_expanded(tr)
            t0 = time.perf_counter()
            build_scene(tr, expanded=expanded)
            t_scene.append(time.perf_counter() - t0)
    g = tr.graph
    row = {
        "graph": name, "nodes": g.number_of_nodes(), "edges": g.number_of_edges(),
        "trace": _ms(t_trace), "layout": _ms(t_layout),
        "crossings": count_crossings(g, lay.positions, lay.edge_points),
        "scene": _ms(t_scene) if t_scene else "-",
    }
    others = (("dot", dot_layout, "LR", use_dot), ("ogdf", ogdf_layout, "TB", use_ogdf))
    for key, runner, direction, on in others:
        res = [runner(g) for _ in range(repeat)] if on else [None]
        if res[0] is None:
            row[key], row[key + " cr"] = "-", "-"
            continue
        row[key] = _ms([r[0] for r in res])
        row[key + " cr"] = count_crossings(g, res[0][1], res[0][2], direction=direction)
    return row


def random_dag(n, m, seed=1):
    """A random DAG with short-range edges: much harder to draw without crossings than a trace."""
    import random

    import networkx as nx

    rng = random.Random(seed)
    g = nx.DiGraph()
    g.add_nodes_from(f"v{i}" for i in range(n))
    while g.number_of_edges() < m:
        a, b = sorted(rng.sample(range(n), 2))
        if b - a <= n // 8:
            g.add_edge(f"v{a}", f"v{b}")
    return g


def stress(use_dot, use_ogdf):
    """Crossings and times on random DAGs (one run each; ogdf and dot skipped where they take minutes)."""
    print("\nstress: random DAGs (not traces), one run each, ms [crossings]")
    print(" | ".join(f"{c:>15}" for c in ("nodes/edges", "ours", "dot", "ogdf")))
    for n, m in ((50, 80), (200, 320), (1000, 1500)):
        g = random_dag(n, m)
        t0 = time.perf_counter()
        lay = layered_layout(g)
        cells = [f"{n}/{m}", f"{1000 * (time.perf_counter() - t0):.0f} [{lay.crossings}]"]
        others = ((dot_layout, "LR", use_dot), (ogdf_layout, "TB", use_ogdf and n <= 1000))
        for runner, direction, on in others:
            res = runner(g) if on else None
            if res is None:
                cells.append("-")
                continue
            cells.append(f"{1000 * res[0]:.0f} [{count_crossings(g, res[1], res[2], direction)}]")
        print(" | ".join(f"{c:>15}" for c in cells), flush=True)


def _ms(samples):
    return f"{1000 * statistics.median(samples):.1f}"


def main(argv=None):
    """Print the table (medians of ``--repeat`` runs, milliseconds; crossings counted one way for all)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-dot", action="store_true")
    ap.add_argument("--no-ogdf", action="store_true")
    ap.add_argument("--no-scene", action="store_true")
    ap.add_argument("--stress", action="store_true", help="also compare on random DAGs (slow: ~10 s)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads (default 1: these tensors are tiny, and spare threads "
                         "only wait on a busy machine)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    build_scene = None if args.no_scene else scene_builder()
    use_dot = not args.no_dot and shutil.which("dot") is not None
    print(f"torch {torch.__version__}, {os.cpu_count()} cpus, {args.threads} torch thread(s); "
          f"dot: {'yes' if use_dot else 'not found'}; "
          f"scene: {'ui.graph.render.build_scene' if build_scene else 'n/a'}; median of {args.repeat}, ms")
    cols = ["graph", "nodes", "edges", "trace", "layout", "crossings", "scene"]
    cols += ["dot", "dot cr", "ogdf", "ogdf cr"]
    print(" | ".join(f"{c:>11}" for c in cols))
    for name, fn in cases():
        row = measure(name, fn, args.repeat, use_dot, not args.no_ogdf, build_scene)
        print(" | ".join(f"{row[c]!s:>11}" for c in cols), flush=True)
    if args.stress:
        stress(use_dot, not args.no_ogdf)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
