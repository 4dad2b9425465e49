"""What recording the blocks' histograms costs: the same run with and without, in one process.

    python bench/histogram_bench.py [--pairs 7] [--steps 100] [--every 50] [--threads 1] [--device cpu]
                                    [--clock cpu|wall] [--json]

The same bench as `bench/health_bench.py --record histograms` (see there): the tiny preset with
`hist_every=0` against `--every` (the default interval 50: steps 1, 50 and 100 of 100 record), paired
medians on the process CPU clock by default. The issue's limit is 5% at the default interval.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from health_bench import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main(record="histograms"))
