"""Graphs the graph tests share (Qt-free): a traced GPT training step and the set that expands it whole."""

from __future__ import annotations

import torch

from explorer.core.autograd.trace import trace
from explorer.core.gpt.model import GPT, GPTConfig
from explorer.core.graph.layout import collapse


def gpt_step_trace(blocks: int, tied: bool = False):
    """One training step of a tiny GPT with `blocks` blocks, traced (about 35 nodes a block)."""
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=16, context_length=4, emb_dim=8, n_heads=2, n_layers=blocks, drop_rate=0.0,
                    tie_weights=tied)
    model = GPT(cfg)
    idx = torch.randint(0, 16, (1, 4))
    return trace(lambda: model.loss(idx, torch.roll(idx, -1, 1)), max_snapshot_elems=16)


def all_expanded(tr) -> set[str]:
    """Every module path of `tr`: the expanded set that shows every op."""
    expanded: set[str] = set()
    while True:
        paths = {d["path"] for _, d in collapse(tr, expanded).nodes(data=True) if d.get("kind") == "module"}
        if not paths - expanded:
            return expanded
        expanded |= paths
