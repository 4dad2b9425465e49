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
from typing import TYPE_CHECKING

import numpy as np

from explorer.core import files

if TYPE_CHECKING:
    import torch

MIN_CORPUS_CHARS = 1000  # below this a train/validation split leaves nothing to learn from
BINARY_SAMPLE = 8192  # bytes inspected to tell text from binary
CHUNK = 256 * 1024  # corpora are decoded and hashed this many bytes or characters at a time
ENCODE_CHUNK = 256 * 1024  # and tokenised this many characters at a time (a list of ids each, 8 bytes an id)
# The line ends of str.splitlines: _lines streams the lines that it would list.
_ENDS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
_LINE = re.compile(f"[^{_ENDS}]*(?:\r\n|[{_ENDS}])?")


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
    """Read a UTF-8 text file as a corpus; CorpusError if it is missing, empty, binary, non-UTF-8 or short.

    Decoded and normalised 256 KiB of whole lines at a time, so reading peaks at the file's bytes plus
    the text (one to four bytes a character, as Python stores it), not at several copies of it.
    """
    p = Path(path)
    if not p.exists():  # stat only, like is_dir: neither opens a FIFO or a device
        raise CorpusError(f"corpus file not found: {p}")
    if p.is_dir():
        raise CorpusError(f"{p} is a folder; choose a text file")
    try:
        raw = files.read_bytes(p, "corpus")
    except files.FileProblem as exc:
        raise CorpusError(f"corpus {p}: {str(exc).split(': ', 1)[-1]}") from None
    if not raw or raw.isspace():  # no copy, unlike raw.strip()
        raise CorpusError(f"{p} is empty; a corpus needs at least {min_chars} characters of text")
    if b"\x00" in raw[:BINARY_SAMPLE]:
        raise CorpusError(f"{p} looks like a binary file (it contains NUL bytes); choose a UTF-8 text file")
    head = raw[:BINARY_SAMPLE].removeprefix(b"\xef\xbb\xbf").decode("utf-8", "ignore")
    controls = sum(1 for ch in head if ord(ch) < 32 and ch not in "\n\r\t\f")
    if controls > 0.05 * min(len(head), BINARY_SAMPLE):
        raise CorpusError(f"{p} looks like a binary file (many control characters); choose a text file")
    pieces, start, view = [], 3 if raw.startswith(b"\xef\xbb\xbf") else 0, memoryview(raw)
    while start < len(raw):
        end = raw.find(b"\n", start + CHUNK)  # cut after a newline: never inside a character or a line
        end = len(raw) if end < 0 else end + 1
        try:
            piece = str(view[start:end], "utf-8")  # decoded from the buffer itself: no copy of the bytes
        except UnicodeDecodeError as exc:
            at = start + exc.start
            raise CorpusError(
                f"{p} is not UTF-8 text (invalid byte 0x{raw[at]:02x} at offset {at}); "
                f"save it as UTF-8 and try again"
            ) from None
        # Whole lines, so the pieces normalise as the whole text would; kept as UTF-8, which is smaller
        # than a str holding one character beyond Latin-1 (two or four bytes for every character).
        pieces.append(_normalise(piece).encode("utf-8"))
        start = end
    view.release()
    del raw
    joined = b"".join(pieces)
    del pieces
    text = joined.decode("utf-8")
    del joined
    if len(text) < min_chars:
        raise CorpusError(f"{p} is too short: {len(text)} characters, at least {min_chars} are needed")
    return text


def fingerprint(text: str) -> str:
    """Short stable hash of a corpus, stored in checkpoints to notice a different corpus on resume.

    The SHA-256 of its UTF-8 bytes, encoded a chunk at a time (no copy of a large corpus)."""
    digest = hashlib.sha256()
    for start in range(0, len(text), CHUNK):
        digest.update(text[start:start + CHUNK].encode("utf-8"))
    return digest.hexdigest()[:16]


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
        # Line by line, as a stream: the trainer's word counting never sees one huge string, and no list
        # of every line is held beside the text.
        tok.train_from_iterator(_lines(text), trainer=trainer, length=text.count("\n") + 1)
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


def _lines(text: str):
    """The lines of `text`, each with its line end, one at a time: text.splitlines(keepends=True)
    without a list of them all."""
    for match in _LINE.finditer(text):
        if match.end() > match.start():
            yield match.group()


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


def token_dtype(vocab_size: int | None) -> np.dtype:
    """The smallest integer type that holds every id of a vocabulary: uint8 up to 256 tokens (most
    character vocabularies), int16 up to 32,768, int32 beyond."""
    if vocab_size is not None and vocab_size <= 256:
        return np.dtype(np.uint8)
    if vocab_size is not None and vocab_size <= np.iinfo(np.int16).max + 1:
        return np.dtype(np.int16)
    if vocab_size is not None and vocab_size <= np.iinfo(np.int32).max + 1:
        return np.dtype(np.int32)
    return np.dtype(np.int64)


def encode_ids(tokenizer, text: str, chunk: int = ENCODE_CHUNK) -> np.ndarray:
    """`tokenizer.encode(text)` as one compact array (token_dtype), encoded `chunk` characters at a time.

    Chunks end where a byte-level BPE's pre-tokenizer splits anyway (after a newline with a non-space on
    each side, or before a space between a non-space and a letter: a whitespace run of one character,
    which that pre-tokenizer never joins to what is across the cut), so the ids equal those of encoding
    the whole text;
    only a stretch of `chunk` characters with no such place is cut where it stands. The array grows by
    doubling, so untouched capacity costs no memory and the result is copied once at most."""
    dtype = token_dtype(getattr(tokenizer, "vocab_size", None))
    out = np.empty(max(16, len(text)), dtype=dtype)  # one id per character at most for char, usually for BPE
    used = start = 0
    while start < len(text):
        end = _chunk_end(text, start, chunk)
        ids = np.asarray(tokenizer.encode(text[start:end]), dtype=dtype)
        if used + len(ids) > len(out):
            grown = np.empty(max(2 * len(out), used + len(ids)), dtype=dtype)
            grown[:used] = out[:used]
            out = grown
        out[used:used + len(ids)] = ids
        used += len(ids)
        start = end
    return out[:used] if used == len(out) else out[:used].copy()


def _chunk_end(text: str, start: int, chunk: int) -> int:
    """Where the chunk of `text` that begins at `start` ends: a place no BPE pre-token spans."""
    limit = start + chunk
    if limit >= len(text):
        return len(text)
    low = start + chunk // 2
    at = text.rfind("\n", low, limit)
    while at > low:  # after a lone newline: a non-space before it and after it
        if not text[at + 1].isspace() and not text[at - 1].isspace():
            return at + 1
        at = text.rfind("\n", low, at)
    at = text.rfind(" ", low, limit)
    while at > low:  # before " word", after a non-space
        if text[at + 1].isalpha() and not text[at - 1].isspace():
            return at
        at = text.rfind(" ", low, at)
    return limit


@dataclass
class TokenData:
    """A corpus encoded once and split into a training head and a validation tail."""

    train: torch.Tensor  # (N_train,) token ids: uint8, int16 or int32, as the vocabulary allows (token_dtype)
    val: torch.Tensor  # (N_val,) token ids, the same dtype; batches come out as int64

    @classmethod
    def from_text(cls, text: str, tokenizer, val_fraction: float = 0.1, context_length: int = 1) -> TokenData:
        """Encode `text` and split it; CorpusError if either part is too short for `context_length`.

        Encoded a chunk at a time into one compact array (encode_ids), so a char-level corpus of N
        characters costs N or 2N bytes of ids beside its text, not a Python list of 8N."""
        if not 0.0 < val_fraction < 1.0:
            raise CorpusError(f"val_fraction must be between 0 and 1, got {val_fraction}")
        import torch  # here: the corpus functions above are used while torch loads (the form's vocabulary)

        ids = torch.from_numpy(encode_ids(tokenizer, text))
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
        import torch

        data = self.train if split == "train" else self.val
        # Offsets come from a CPU generator on every device, so a seed picks the same windows anywhere.
        starts = torch.randint(len(data) - context_length - 1, (batch_size,), generator=generator)
        index = starts[:, None] + torch.arange(context_length + 1)  # (B, T + 1)
        if data.device.type != "cpu":
            index = index.to(data.device, non_blocking=True)
        windows = data[index].long()  # ids are stored compact; the model takes int64
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
