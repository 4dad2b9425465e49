"""Helpers that keep the big graph pipeline (trace, display model, layout, scene) linear in practice.

Building a 10,000-node graph allocates hundreds of thousands of small objects that all live until the
graph is dropped. Python's cyclic garbage collector rescans the growing heap every few thousand
allocations, which makes a linear build quadratic in effect (measured: a third of the trace's time and
more than half of a plain list comprehension's at 5,000 nodes). `no_gc` pauses it for such a build.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

__all__ = ["ONE_THREAD_MAX_PARAMETERS", "few_threads_for", "no_gc", "single_torch_thread"]


@contextmanager
def no_gc(keep: bool = False) -> Iterator[None]:
    """Pause the cyclic garbage collector inside the block (reference counting still frees memory).

    Nested uses are fine: only the outermost one turns the collector back on, and only if it was on.
    `keep`: what the block made lives on (a trace's tens of thousands of nodes, events and snapshots): at
    the end, move every tracked object into the collector's oldest generation without scanning it, instead
    of letting the young-generation pass that follows rescan them all and free nothing (170-220 ms at
    10,000 nodes). A full collection still looks at them, as at any long-lived object. Skipped when
    something was frozen on purpose (`gc.unfreeze` would release that too)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
        if keep and gc.get_freeze_count() == 0:
            gc.freeze()
            gc.unfreeze()
    finally:
        if was_enabled:
            gc.enable()


@contextmanager
def single_torch_thread() -> Iterator[None]:
    """Run torch single-threaded for the block, then restore the previous thread count.

    For tensors far too small to split across threads (a toy MLP's, a small GPT's one-token steps while
    it generates): intra-op threads only add a fork and a join per kernel, and on a busy machine each join
    may wait for a descheduled thread (several times slower, and the GUI thread starved). torch is
    imported here, not with this module, which stays torch-free."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


# Parameters of a model (or part of one) up to which measurements made beside training (per-block norms,
# histograms) run on one torch thread: they are many small kernels. nanoGPT's baby GPT (0.8M) under load
# (average 8 on 2 cores), paired: a health measurement 877 ms on 2 threads vs 43 ms on one, a histogram
# step 10.9 s vs 0.7 s. Larger models keep the caller's threads, where their work is worth splitting.
ONE_THREAD_MAX_PARAMETERS = 5_000_000


def few_threads_for(parameters: int):
    """`single_torch_thread()` for work on a model of at most ONE_THREAD_MAX_PARAMETERS, else a no-op."""
    return single_torch_thread() if parameters <= ONE_THREAD_MAX_PARAMETERS else nullcontext()
