"""Corpora, tokenizers and batches for pretraining.

The default corpus needs no download: it is the English prose of the Python Language Reference that
every CPython installation carries for `help()` (`pydoc_data.topics`), read at run time (never copied
into the repository), with its code samples, grammar rules and tables left out. Users can open any
UTF-8 text file instead.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

from explorer.core import files

MIN_CORPUS_CHARS = 1000  # below this a train/validation split leaves nothing to learn from
BINARY_SAMPLE = 8192  # bytes inspected to tell text from binary


class CorpusError(ValueError):
    """A corpus that cannot be trained on; the message says why and what to do."""


# ---------------------------------------------------------------------------------------------
# Corpora


@lru_cache(maxsize=1)
def default_corpus() -> str:
    """English prose from the local Python installation (about 240 KB), the same on every run."""
    try:
        from pydoc_data.topics import topics

        text = "\n\n".join(topics[key].strip() for key in sorted(topics))
    except ImportError:  # some distributions strip pydoc_data; fall back to stdlib docstrings
        text = _stdlib_docstrings()
    return _prose_only(_normalise(text))


def _prose_only(text: str) -> str:
    # Indented code, grammar rules, tables and heading underlines would fill the samples with
    # runs of spaces and bars; the prose around them is what shows a model learning English.
    keep = []
    for line in text.split("\n"):
        body = line.strip()
        if line.startswith("   ") or "::=" in body or body.startswith(("|", "+-")):
            continue
        if body and set(body) <= set("*=-~^\""):
            continue
        keep.append(line)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(keep)).strip() + "\n"


def _stdlib_docstrings() -> str:
    import inspect

    modules = (
        "argparse",
        "collections",
        "dataclasses",
        "functools",
        "json",
        "pathlib",
        "re",
        "string",
        "textwrap",
        "threading",
        "typing",
        "unittest",
        "logging",
        "random",
    )
    parts = []
    for name in modules:
        module = __import__(name)
        parts.append(inspect.getdoc(module) or "")
        for attr in sorted(vars(module)):
            obj = getattr(module, attr)
            if not attr.startswith("_") and (inspect.isclass(obj) or inspect.isfunction(obj)):
                parts.append(inspect.getdoc(obj) or "")
    return "\n\n".join(p for p in parts if p)


def _normalise(text: str) -> str:
    # One newline convention, no trailing blanks: fewer distinct characters for the char tokenizer.
    return "\n".join(line.rstrip() for line in text.replace("\r\n", "\n").split("\n"))


def load_corpus(path: str | Path, min_chars: int = MIN_CORPUS_CHARS) -> str:
    """Read a UTF-8 text file as a corpus; CorpusError if it is missing, empty, binary, non-UTF-8 or short."""
    p = Path(path)
    if not p.exists():  # stat only, like is_dir: neither opens a FIFO or a device
        raise CorpusError(f"corpus file not found: {p}")
    if p.is_dir():
        raise CorpusError(f"{p} is a folder; choose a text file")
    try:
        raw = files.read_bytes(p, "corpus")
    except files.FileProblem as exc:
        raise CorpusError(f"corpus {p}: {str(exc).split(': ', 1)[-1]}") from None
    if not raw.strip():
        raise CorpusError(f"{p} is empty; a corpus needs at least {min_chars} characters of text")
    if b"\x00" in raw[:BINARY_SAMPLE]:
        raise CorpusError(f"{p} looks like a binary file (it contains NUL bytes); choose a UTF-8 text file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CorpusError(
            f"{p} is not UTF-8 text (invalid byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
            f"save it as UTF-8 and try again"
        ) from None
    controls = sum(1 for ch in text[:BINARY_SAMPLE] if ord(ch) < 32 and ch not in "\n\r\t\f")
    if controls > 0.05 * min(len(text), BINARY_SAMPLE):
        raise CorpusError(f"{p} looks like a binary file (many control characters); choose a text file")
    text = _normalise(text)
    if len(text) < min_chars:
        raise CorpusError(f"{p} is too short: {len(text)} characters, at least {min_chars} are needed")
    return text


def fingerprint(text: str) -> str:
    """Short stable hash of a corpus, stored in checkpoints to notice a different corpus on resume."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# Tokenizers: encode(str) -> list[int], decode(list[int]) -> str, vocab_size, to_dict().


class CharTokenizer:
    """One token per distinct character of the corpus, in code-point order."""

    kind = "char"

    def __init__(self, chars: str):
        self.chars = "".join(sorted(set(chars)))
        if not self.chars:
            raise CorpusError("cannot build a character tokenizer from empty text")
        self._index = {ch: i for i, ch in enumerate(self.chars)}

    @classmethod
    def train(cls, text: str) -> CharTokenizer:
        """The tokenizer of every character in `text`."""
        return cls(text)

    @property
    def vocab_size(self) -> int:
        """Number of tokens."""
        return len(self.chars)

    def encode(self, text: str, strict: bool = False) -> list[int]:
        """Token ids of `text`; characters the corpus never had are dropped (or CorpusError if strict)."""
        if strict:
            unknown = sorted(set(text) - set(self._index))
            if unknown:
                shown = "".join(unknown[:20])
                raise CorpusError(
                    f"the text has {len(unknown)} characters the tokenizer does not know: {shown!r}"
                )
        return [self._index[ch] for ch in text if ch in self._index]

    def decode(self, ids) -> str:
        """Text of token ids."""
        return "".join(self.chars[i] for i in ids if 0 <= i < len(self.chars))

    def to_dict(self) -> dict:
        """JSON-able description that `tokenizer_from_dict` restores."""
        return {"kind": self.kind, "chars": self.chars}


class BPETokenizer:
    """Byte-level BPE (as in GPT-2) trained locally on the corpus with Hugging Face `tokenizers`."""

    kind = "bpe"

    def __init__(self, backend):
        self._tok = backend

    @classmethod
    def train(cls, text: str, vocab_size: int = 1024) -> BPETokenizer:
        """Learn merges on `text` until `vocab_size` tokens (fewer if the text runs out of pairs)."""
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        alphabet = pre_tokenizers.ByteLevel.alphabet()
        if vocab_size <= len(alphabet):
            raise CorpusError(f"a byte-level BPE needs vocab_size above {len(alphabet)} (its byte alphabet), "
                              f"got {vocab_size}: raise vocab_size, to 1024 for example")
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=alphabet, show_progress=False)
        # Chunks by line so the trainer's word counting sees a stream, not one huge string.
        tok.train_from_iterator(text.splitlines(keepends=True), trainer=trainer)
        return cls(tok)

    @property
    def vocab_size(self) -> int:
        """Number of tokens."""
        return self._tok.get_vocab_size()

    def encode(self, text: str, strict: bool = False) -> list[int]:
        """Token ids of `text` (every byte sequence is encodable)."""
        return self._tok.encode(text).ids

    def decode(self, ids) -> str:
        """Text of token ids."""
        return self._tok.decode(list(ids))

    def to_dict(self) -> dict:
        """JSON-able description that `tokenizer_from_dict` restores."""
        return {"kind": self.kind, "json": self._tok.to_str()}


TOKENIZERS = ("char", "bpe")


def train_tokenizer(kind: str, text: str, vocab_size: int = 1024):
    """A tokenizer of `kind` ("char" or "bpe") learned from `text`."""
    if kind == "char":
        return CharTokenizer.train(text)
    if kind == "bpe":
        return BPETokenizer.train(text, vocab_size)
    raise CorpusError(f"unknown tokenizer {kind!r}; choose one of {', '.join(TOKENIZERS)}")


_CHAR_VOCAB_CACHE: dict[tuple, int] = {}


def char_vocab_size(corpus_path: str | Path | None = None) -> int:
    """How many tokens the character tokenizer gives a corpus (None: the built-in one), cached per file.

    This is the vocab_size a char-level run really trains with; the UI shows it instead of a preset's
    number. CorpusError for a file `load_corpus` refuses.
    """
    if corpus_path is None:
        key: tuple = ("default",)
    else:
        try:
            stat = Path(corpus_path).stat()
            key = (str(corpus_path), stat.st_mtime_ns, stat.st_size)
        except OSError:
            key = (str(corpus_path),)  # load_corpus below says what is wrong
    if key not in _CHAR_VOCAB_CACHE:
        text = default_corpus() if corpus_path is None else load_corpus(corpus_path)
        _CHAR_VOCAB_CACHE[key] = CharTokenizer.train(text).vocab_size
    return _CHAR_VOCAB_CACHE[key]


def tokenizer_from_dict(data: dict):
    """Restore a tokenizer from `to_dict()`; CorpusError when the description is not one."""
    try:
        kind = data["kind"]
        if kind == "char":
            return CharTokenizer(data["chars"])
        if kind == "bpe":
            from tokenizers import Tokenizer

            return BPETokenizer(Tokenizer.from_str(data["json"]))
    except Exception as exc:  # KeyError, TypeError, or the tokenizers library's own exception type
        raise CorpusError(f"invalid tokenizer description: {exc}") from None
    raise CorpusError(f"unknown tokenizer kind {kind!r}")


def tokenizer_to_json(tokenizer) -> str:
    """The tokenizer as one JSON string."""
    return json.dumps(tokenizer.to_dict())


# ---------------------------------------------------------------------------------------------
# Token data and batches


@dataclass
class TokenData:
    """A corpus encoded once and split into a training head and a validation tail."""

    train: torch.Tensor  # (N_train,) int64 token ids
    val: torch.Tensor  # (N_val,) int64 token ids

    @classmethod
    def from_text(cls, text: str, tokenizer, val_fraction: float = 0.1, context_length: int = 1) -> TokenData:
        """Encode `text` and split it; CorpusError if either part is too short for `context_length`."""
        if not 0.0 < val_fraction < 1.0:
            raise CorpusError(f"val_fraction must be between 0 and 1, got {val_fraction}")
        ids = torch.tensor(tokenizer.encode(text), dtype=torch.long)
        n_val = int(len(ids) * val_fraction)
        data = cls(train=ids[: len(ids) - n_val], val=ids[len(ids) - n_val :])
        for name, part in (("training", data.train), ("validation", data.val)):
            if len(part) < context_length + 2:
                raise CorpusError(
                    f"the corpus is too short: its {name} part has {len(part)} tokens, at least "
                    f"{context_length + 2} are needed for context_length {context_length}; "
                    f"use a longer text or a shorter context"
                )
        return data

    def batch(
        self,
        split: str,
        batch_size: int,
        context_length: int,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Random windows on `device`: inputs x, next-token targets y, each (batch_size, context_length)."""
        data = self.train if split == "train" else self.val
        # Offsets come from a CPU generator on every device, so a seed picks the same windows anywhere.
        starts = torch.randint(len(data) - context_length - 1, (batch_size,), generator=generator)
        index = starts[:, None] + torch.arange(context_length + 1)  # (B, T + 1)
        if data.device.type != "cpu":
            index = index.to(data.device, non_blocking=True)
        windows = data[index]
        x, y = windows[:, :-1].contiguous(), windows[:, 1:].contiguous()
        device = torch.device(device)
        if x.device.type == "cpu" and device.type == "cuda":
            # Pinned host memory lets the copy overlap with the GPU's work.
            return x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
        if x.device != device:
            return x.to(device), y.to(device)
        return x, y

    def to(self, device: torch.device | str) -> TokenData:
        """The same token ids on `device`: batches are then cut there, with no copy per step."""
        return TokenData(train=self.train.to(device), val=self.val.to(device))
