"""Reading and tokenising a corpus in bounded memory (issue 24, item 7): the chunked reader, hash and
encoder give exactly what the whole-text ones gave, and tokenising stays under 4x the corpus's size.
bench/corpus_memory_bench.py prints the process's peak for 10, 100 and 256 MB."""

from __future__ import annotations

import hashlib
import random
import tracemalloc

import numpy as np
import pytest
import torch

from explorer.core.gpt import data
from explorer.core.gpt.data import (
    BPETokenizer,
    CharTokenizer,
    TokenData,
    default_corpus,
    encode_ids,
    fingerprint,
    load_corpus,
    token_dtype,
)


def _old_normalise(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.replace("\r\n", "\n").split("\n"))


def _messy(seed: int, n: int = 5000) -> str:
    rng = random.Random(seed)
    parts = ["word", "Zeile", "café", "日本", "😀", " ", "  ", "\t", "\r\n", "\n", "\n\n", "\u2028", "\x0c",
             "\u00a0", "3.14", "don't", "--", "\r"]
    return "".join(rng.choice(parts) for _ in range(n))


@pytest.mark.parametrize("seed", range(6))
def test_the_chunked_reader_gives_what_the_whole_file_gave(tmp_path, monkeypatch, seed):
    text = _messy(seed)
    raw = (b"\xef\xbb\xbf" if seed % 2 else b"") + text.encode("utf-8")
    path = tmp_path / "c.txt"
    path.write_bytes(raw)
    expected = _old_normalise(raw.decode("utf-8-sig"))
    monkeypatch.setattr(data, "CHUNK", 1 + seed * 13)  # tiny chunks: many cuts, some right at a line end
    assert load_corpus(path) == expected


def test_a_bad_byte_is_reported_at_its_offset_in_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "CHUNK", 10)
    path = tmp_path / "c.txt"
    path.write_bytes(b"\xef\xbb\xbf" + b"good line\n" * 300 + b"caf\xe9\n")
    with pytest.raises(data.CorpusError, match="invalid byte 0xe9 at offset 3006"):
        load_corpus(path)


def test_the_chunked_fingerprint_is_the_sha256_of_the_text(monkeypatch):
    text = _messy(7)
    monkeypatch.setattr(data, "CHUNK", 17)
    assert fingerprint(text) == hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@pytest.mark.parametrize("kind", ["char", "bpe"])
@pytest.mark.parametrize("chunk", [300, 997, 10_000])
def test_chunked_encoding_equals_encoding_the_whole_text(kind, chunk):
    text = default_corpus()[:60_000]
    tok = CharTokenizer.train(text) if kind == "char" else BPETokenizer.train(text, 600)
    ids = encode_ids(tok, text, chunk=chunk)
    assert ids.dtype == (np.uint8 if kind == "char" else np.int16)
    assert ids.tolist() == tok.encode(text)


@pytest.mark.parametrize("seed", range(3))
def test_every_place_a_chunk_ends_is_one_the_bpe_pre_tokenizer_splits_at(seed):
    """Messy text (CRLF, runs of blanks, emoji, CJK): each cut the chunker chose, rather than forced
    for want of one, encodes as the whole text does across it."""
    text = default_corpus()[:20_000] + _messy(seed, 4000)
    tok = BPETokenizer.train(text, 500)
    start = chosen = 0
    while start < len(text):
        end = data._chunk_end(text, start, 60)
        if start + 60 != end < len(text):
            chosen += 1
            window = text[max(0, start - 100):end + 100]
            cut = end - max(0, start - 100)
            assert tok.encode(window) == tok.encode(window[:cut]) + tok.encode(window[cut:]), repr(window)
        start = end
    assert chosen > 100


def test_token_dtype_is_as_small_as_the_vocabulary_allows():
    assert token_dtype(65) == np.uint8 and token_dtype(256) == np.uint8
    assert token_dtype(257) == np.int16 and token_dtype(32_768) == np.int16
    assert token_dtype(50_257) == np.int32 and token_dtype(None) == np.int64


def test_batches_are_int64_though_ids_are_stored_compact():
    text = default_corpus()[:20_000]
    tok = CharTokenizer.train(text)
    token_data = TokenData.from_text(text, tok, context_length=16)
    assert token_data.train.dtype == torch.uint8
    x, y = token_data.batch("train", 4, 16, torch.Generator().manual_seed(0))
    assert x.dtype == y.dtype == torch.long and x.shape == (4, 16)
    assert torch.equal(x[:, 1:], y[:, :-1])


def test_reading_and_tokenising_peaks_under_4x_the_corpus(tmp_path):
    """Today's list of ids alone is 8 bytes a character; the bound is 4x the file (counted by
    tracemalloc, which sees Python's and numpy's allocations)."""
    rng = random.Random(0)
    # English in ASCII: Python stores it a byte a character (text with a character beyond Latin-1 takes
    # two or four bytes a character, and the bound then covers the bytes read but not that widening)
    words = [w for w in default_corpus().split()[:8000] if w.isascii()]
    lines, size = [], 0
    while size < 3_000_000:
        line = " ".join(rng.choice(words) for _ in range(12)) + "\n"
        lines.append(line)
        size += len(line.encode("utf-8"))
    path = tmp_path / "corpus.txt"
    path.write_text("".join(lines), encoding="utf-8")
    del lines
    nbytes = path.stat().st_size
    tracemalloc.start()
    try:
        text = load_corpus(path)
        _, read_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        tok = CharTokenizer.train(text)
        fingerprint(text)
        token_data = TokenData.from_text(text, tok, context_length=64)
        _, encode_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(token_data.train) + len(token_data.val) == len(text)
    assert read_peak < 4 * nbytes, read_peak / nbytes
    assert encode_peak < 4 * nbytes, encode_peak / nbytes
