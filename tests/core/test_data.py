"""Corpora, tokenizers and batches."""

import pytest
import torch

from explorer.core.gpt.data import (
    BPETokenizer,
    CharTokenizer,
    CorpusError,
    TokenData,
    default_corpus,
    load_corpus,
    tokenizer_from_dict,
    train_tokenizer,
)

TEXT = "The quick brown fox jumps over the lazy dog. " * 40


def test_default_corpus_is_english_and_stable():
    text = default_corpus()
    assert len(text) > 100_000
    assert text.count(" the ") > 1000
    assert default_corpus() == text
    assert "\r" not in text


def test_load_corpus_reads_utf8(tmp_path):
    path = tmp_path / "ok.txt"
    path.write_text("\ufeff" + "Café au lait.\r\n" * 100, encoding="utf-8")
    text = load_corpus(path)
    assert text == "Café au lait.\n" * 100  # byte-order mark and Windows line ends removed


@pytest.mark.parametrize("content, message", [
    (b"", "is empty"),
    (b"   \n\n ", "is empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00IHDR" * 200, "binary"),
    ("caf\u00e9 ".encode("latin-1") * 400, "not UTF-8"),
    (b"too short", "too short"),
    (bytes(range(1, 32)) * 100, "binary"),
])
def test_load_corpus_explains_bad_files(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(CorpusError, match=message):
        load_corpus(path)


def test_load_corpus_missing_and_folder(tmp_path):
    with pytest.raises(CorpusError, match="not found"):
        load_corpus(tmp_path / "nope.txt")
    with pytest.raises(CorpusError, match="folder"):
        load_corpus(tmp_path)


def test_char_tokenizer_round_trip():
    tok = CharTokenizer.train(TEXT)
    assert tok.vocab_size == len(set(TEXT))
    ids = tok.encode("the fox")
    assert tok.decode(ids) == "the fox"
    assert tok.encode("the Zebra") == tok.encode("the ebra")  # unknown letters dropped
    with pytest.raises(CorpusError, match="does not know"):
        tok.encode("Zebra", strict=True)
    again = tokenizer_from_dict(tok.to_dict())
    assert again.encode(TEXT) == tok.encode(TEXT)


def test_bpe_tokenizer_learns_merges_and_round_trips():
    tok = train_tokenizer("bpe", TEXT, vocab_size=300)
    assert isinstance(tok, BPETokenizer)
    assert 256 < tok.vocab_size <= 300
    ids = tok.encode("The lazy fox. Ünïcode ✓")
    assert tok.decode(ids) == "The lazy fox. Ünïcode ✓"
    assert len(tok.encode(TEXT)) < len(TEXT.encode()) / 2  # merges compress the text
    assert tokenizer_from_dict(tok.to_dict()).encode(TEXT) == tok.encode(TEXT)
    with pytest.raises(CorpusError, match="above 256"):
        train_tokenizer("bpe", TEXT, vocab_size=100)
    with pytest.raises(CorpusError, match="unknown tokenizer"):
        train_tokenizer("word", TEXT)
    with pytest.raises(CorpusError, match="invalid tokenizer"):
        tokenizer_from_dict({"kind": "bpe", "json": "{not json"})


def test_split_and_batches():
    tok = CharTokenizer.train(TEXT)
    data = TokenData.from_text(TEXT, tok, val_fraction=0.25, context_length=8)
    assert len(data.train) + len(data.val) == len(TEXT)
    assert len(data.val) == len(TEXT) // 4
    assert tok.decode(data.val.tolist()) == TEXT[-len(data.val):]
    x, y = data.batch("train", 5, 8, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (5, 8) and x.dtype == torch.long
    assert torch.equal(x[:, 1:], y[:, :-1])  # targets are the inputs shifted by one
    x2, _ = data.batch("train", 5, 8, torch.Generator().manual_seed(0))
    assert torch.equal(x, x2)


def test_too_short_for_context():
    tok = CharTokenizer.train(TEXT)
    with pytest.raises(CorpusError, match="too short.*validation"):
        TokenData.from_text(TEXT[:200], tok, val_fraction=0.1, context_length=64)


def test_char_vocab_size_is_what_the_tokenizer_gives_and_follows_an_edited_file(tmp_path):
    from explorer.core.gpt.data import CharTokenizer, CorpusError, char_vocab_size, default_corpus

    assert char_vocab_size() == CharTokenizer.train(default_corpus()).vocab_size
    path = tmp_path / "c.txt"
    path.write_text("ab" * 600, encoding="utf-8")
    assert char_vocab_size(path) == 2
    path.write_text("abcd" * 600, encoding="utf-8")  # a different size: counted again
    assert char_vocab_size(str(path)) == 4
    with pytest.raises(CorpusError, match="not found"):
        char_vocab_size(tmp_path / "missing.txt")
