"""Peak memory of reading and tokenising a corpus, as a multiple of the corpus's size (issue 24, item 7).

For each size (default 10, 100 and 256 MB) it writes a generated English-like ASCII corpus into a
temporary folder (nothing is downloaded), then runs, in a fresh child process, what the training process
does with it: load_corpus, fingerprint, the char tokenizer and TokenData.from_text. The child reports
its peak resident memory (ru_maxrss) above what it held before reading, and the bench prints that as a
ratio to the file's size; the bound is 4x. `--baseline` also runs the old way of encoding (a Python list
of ids turned into an int64 tensor) in the same run, for comparison.

    python bench/corpus_memory_bench.py [--sizes 10 100 256] [--baseline]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MB = 1_000_000

CHILD = r"""
import json, resource, sys
import torch  # noqa: F401 - imported before the baseline, as in the training process
from explorer.core.gpt import data

def rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux

path, mode = sys.argv[1], sys.argv[2]
before = rss()
text = data.load_corpus(path)
after_read = rss()
data.fingerprint(text)
tok = data.CharTokenizer.train(text)
if mode == "baseline":
    ids = torch.tensor(tok.encode(text), dtype=torch.long)
else:
    ids = data.TokenData.from_text(text, tok, context_length=256).train
print(json.dumps({"before": before, "read": after_read - before, "peak": rss() - before,
                  "tokens": len(text)}))
"""


def make_corpus(path: Path, size: int, seed: int = 0) -> int:
    """An ASCII corpus of about `size` bytes: sentences of common words, one paragraph a line."""
    rng = random.Random(seed)
    words = ("the gradient of a loss flows back through every node of the graph and each weight takes "
             "its share by the chain rule while the optimizer steps against it so the model learns to "
             "predict the next token of text one small step at a time").split()
    written = 0
    with open(path, "w", encoding="ascii") as out:
        while written < size:
            line = " ".join(rng.choice(words) for _ in range(rng.randint(8, 40))).capitalize() + ".\n"
            out.write(line)
            written += len(line)
    return path.stat().st_size


def measure(path: Path, mode: str) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, str(path), mode], cwd=ROOT, capture_output=True,
                          text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 256], help="corpus sizes in MB")
    parser.add_argument("--baseline", action="store_true", help="also measure the old list-of-ids way")
    args = parser.parse_args(argv)
    print(f"{'corpus':>10} {'way':>9} {'read peak':>10} {'total peak':>11} {'ratio':>6}")
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for mb in args.sizes:
            path = Path(tmp) / f"corpus-{mb}mb.txt"
            size = make_corpus(path, min(mb * MB, 256 * 1024 * 1024))  # the corpus limit is 256 MiB
            for mode in ["chunked"] + (["baseline"] if args.baseline else []):
                r = measure(path, mode)
                ratio = r["peak"] / size
                if mode == "chunked":
                    worst = max(worst, ratio)
                print(f"{size / MB:>8.1f}MB {mode:>9} {r['read'] / MB:>8.0f}MB {r['peak'] / MB:>9.0f}MB "
                      f"{ratio:>5.2f}x")
            path.unlink()
    print(f"worst ratio of the chunked way: {worst:.2f}x (bound: 4x)")
    return 0 if worst <= 4.0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
