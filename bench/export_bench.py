"""Benchmark of exporting: how long generating a script or notebook takes on the GUI thread.

Run: ``.venv/bin/python bench/export_bench.py [--repeat N]``. Prints medians in milliseconds. The
baseline is one `compute()` of the same program (parse, run, trace: what the Expression workspace does
after every edit on its worker), measured in the same run, so the ratio says whether exporting could be
noticed next to work the app already does.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from explorer.core.export import export_notebook, export_script  # noqa: E402
from explorer.core.lang.examples import list_examples, load_example  # noqa: E402
from explorer.core.workspaces.expression import compute  # noqa: E402
from explorer.core.workspaces.network import NetworkWorkspace  # noqa: E402
from explorer.core.workspaces.pretrain import PretrainWorkspace  # noqa: E402


def median_ms(fn, repeat: int) -> float:
    fn()  # warm-up: imports and caches
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=20)
    repeat = parser.parse_args().repeat
    print(f"{'what':44} {'export ms':>10} {'compute ms':>11} {'ratio':>7}")
    for name, _ in list_examples():
        source = load_example(name)
        base = median_ms(lambda s=source: compute(s), repeat)
        script = median_ms(lambda s=source: export_script("expression", s), repeat)
        notebook = median_ms(lambda s=source: export_notebook("expression", s), repeat)
        for what, ms in (("script", script), ("notebook", notebook)):
            print(f"{f'expression {name} ({what})':44} {ms:10.2f} {base:11.2f} {ms / base:7.2f}")
    network, pretrain = NetworkWorkspace(), PretrainWorkspace()
    for what, fn in (("network seed (script)", lambda: export_script("network", network)),
                     ("pretrain tiny (script)", lambda: export_script("pretrain", pretrain))):
        print(f"{what:44} {median_ms(fn, repeat):10.2f}")


if __name__ == "__main__":
    main()
