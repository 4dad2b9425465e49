"""Looking inside a trained GPT: the logit lens and the per-token loss of a validation passage.

**Logit lens.** A GPT's blocks add to one residual stream; only the last one is read through the final
LayerNorm and the output head (`GPT.read_out`). Reading every layer's stream through that same read-out
(after the embeddings = layer 0, after block i = layer i + 1) shows what the model "would predict" if it
stopped there, and how the prediction sharpens block by block. The last layer's reading is exactly the
model's own prediction.

**Per-token loss.** The cross-entropy of each token of a passage, given the tokens before it in its window.
The passage is cut into windows of the context length, each read on its own as training reads its
windows, so a window's mean equals `model.loss` on it; the first token of a window is predicted from one
token only. Each position also keeps the model's top predictions.

Both run under `torch.no_grad()` in eval mode (dropout off) and give the model back as they found it:
the same weights, the same training flag. Qt-free.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from explorer.core.gpt.model import GPT

DEFAULT_TOP_K = 5
MAX_TOP_K = 50
PASSAGE_TOKENS = 512  # default length of the validation passage the UI scores
MAX_PASSAGE_TOKENS = 8192
WINDOWS_AT_ONCE = 8  # context-length windows evaluated in one batch at most
LOGITS_AT_ONCE = 1 << 24  # ... and fewer when their logits would pass this many numbers (64 MiB)


class LensError(ValueError):
    """Input the lens cannot read: one line that says what to change."""


class LensCancelled(Exception):
    """The caller asked to stop (a newer request came)."""


@dataclass
class LensResult:
    """What every layer's residual stream predicts at every position of a prompt.

    `top_ids[l, t]` and `top_probs[l, t]` are the k most likely next tokens (most likely first) and their
    probabilities when layer l's stream at position t is read through the final norm and the head; layer 0
    is the embeddings, layer l the output of block l - 1, the last layer the model's own prediction."""

    ids: list[int]  # the tokens read (the prompt's last context_length tokens)
    top_ids: np.ndarray  # (n_layers + 1, T, k) int64
    top_probs: np.ndarray  # (n_layers + 1, T, k) float32
    clipped: int = 0  # tokens left out at the start because the prompt was longer than the context
    tokens: list[str] = field(default_factory=list)  # each id as text (filled by compute_logit_lens)
    names: dict[int, str] = field(default_factory=dict)  # text of every id in ids and top_ids (likewise)
    step: int = 0
    name: str = ""
    vocab_size: int = 0

    @property
    def n_layers(self) -> int:
        """Rows of the lens: the embeddings plus one per block."""
        return int(self.top_ids.shape[0])

    def layer_name(self, layer: int) -> str:
        """"embedding" for layer 0, "block 1".. for the others (1-based, the output of that block)."""
        return "embedding" if layer == 0 else f"block {layer}"


@dataclass
class TokenLosses:
    """Per-token cross-entropy over a passage. `losses[i]` is the loss (nats) of token `ids[i + 1]`, given
    the tokens before it in its window; `top_ids[i]`, `top_probs[i]` what the model predicted there."""

    ids: list[int]  # the passage (N tokens)
    losses: np.ndarray  # (N - 1,) float32
    top_ids: np.ndarray  # (N - 1, k) int64
    top_probs: np.ndarray  # (N - 1, k) float32
    window_starts: list[int]  # index in `ids` where each context window begins
    tokens: list[str] = field(default_factory=list)  # each id as text (filled by compute_token_losses)
    names: dict[int, str] = field(default_factory=dict)  # text of every id in ids and top_ids (likewise)
    step: int = 0
    name: str = ""
    vocab_size: int = 0
    note: str = ""  # where the passage comes from, and any caveat

    @property
    def mean(self) -> float:
        """The passage's mean loss (every predicted token counts once)."""
        return float(self.losses.mean()) if len(self.losses) else float("nan")

    def loss_of_token(self, index: int) -> float | None:
        """The loss of token `index` of the passage (None for the first: nothing predicts it)."""
        return float(self.losses[index - 1]) if 1 <= index <= len(self.losses) else None


# ---------------------------------------------------------------------------------------------
# Input checks


def check_ids(model: GPT, token_ids, what: str = "prompt", minimum: int = 1) -> list[int]:
    """`token_ids` (a sequence or 1-D tensor/array of ints) as a list; LensError naming the first problem."""
    if isinstance(token_ids, torch.Tensor | np.ndarray):
        if token_ids.ndim != 1:
            shape = tuple(token_ids.shape)
            raise LensError(f"the {what} must be one sequence of token ids, got shape {shape}")
        if isinstance(token_ids, torch.Tensor):
            dtype = token_ids.dtype
            integral = not (dtype.is_floating_point or dtype.is_complex or dtype == torch.bool)
        else:
            integral = np.issubdtype(token_ids.dtype, np.integer)
        if not integral:
            raise LensError(f"the {what}'s token ids must be whole numbers, got {token_ids.dtype}")
        ids = [int(i) for i in token_ids.tolist()]
    else:
        if isinstance(token_ids, str | bytes) or not isinstance(token_ids, Sequence):
            raise LensError(f"the {what} must be a sequence of token ids, got {type(token_ids).__name__}")
        bad = next((i for i in token_ids if isinstance(i, bool) or not isinstance(i, int | np.integer)), None)
        if bad is not None:
            raise LensError(f"the {what}'s token ids must be whole numbers, got {bad!r}"[:200])
        ids = [int(i) for i in token_ids]
    if len(ids) < minimum:
        if not ids:
            raise LensError(f"the {what} is empty: it needs at least {minimum} token"
                            + ("s" if minimum > 1 else ""))
        raise LensError(f"the {what} has {len(ids)} token; it needs at least {minimum}")
    vocab = model.config.vocab_size
    out_of_range = next((i for i in ids if not 0 <= i < vocab), None)
    if out_of_range is not None:
        raise LensError(f"token id {out_of_range} is outside this model's vocabulary (0 to {vocab - 1})")
    return ids


def _top_k(value: int, vocab: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise LensError(f"top_k must be a whole number of at least 1, got {value!r}")
    return min(value, vocab)


class _EvalMode:
    """Eval mode and no_grad for the duration; the training flag given back afterwards."""

    def __init__(self, model: GPT) -> None:
        self.model = model
        self.was_training = model.training
        self.no_grad = torch.no_grad()

    def __enter__(self) -> GPT:
        self.no_grad.__enter__()
        self.model.eval()
        return self.model

    def __exit__(self, *exc) -> None:
        self.model.train(self.was_training)
        self.no_grad.__exit__(*exc)


def _device(model: GPT) -> torch.device:
    return next(model.parameters()).device


def _top(logits: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
    probs = logits.float().softmax(dim=-1)
    values, indices = probs.topk(k, dim=-1)
    return indices.cpu().numpy().astype(np.int64), values.cpu().numpy().astype(np.float32)


# ---------------------------------------------------------------------------------------------
# The two computations


def logit_lens(model: GPT, token_ids, top_k: int = DEFAULT_TOP_K) -> LensResult:
    """Every layer's prediction at every position of a prompt: its residual stream read through the final
    LayerNorm and the output head (`GPT.read_out`), softmax, the `top_k` tokens.

    A prompt longer than the model's context length is clipped to its last context_length tokens
    (`result.clipped` says how many were left out). LensError for an empty prompt, an id outside the
    vocabulary, or a bad `top_k` (a k above the vocabulary is reduced to it)."""
    ids = check_ids(model, token_ids)
    k = _top_k(top_k, model.config.vocab_size)
    context = model.config.context_length
    clipped = max(0, len(ids) - context)
    ids = ids[clipped:]
    with _EvalMode(model):
        idx = torch.tensor([ids], dtype=torch.long, device=_device(model))
        tops = [_top(model.read_out(stream)[0], k) for stream in model.residual_streams(idx)]
    return LensResult(ids=ids, top_ids=np.stack([t[0] for t in tops]),
                      top_probs=np.stack([t[1] for t in tops]), clipped=clipped)


def token_losses(model: GPT, token_ids, top_k: int = DEFAULT_TOP_K,
                 progress: Callable[[int, int], None] | None = None,
                 cancelled: Callable[[], bool] | None = None) -> TokenLosses:
    """The cross-entropy of every token of a passage (N >= 2 ids) after the ones before it in its window.

    The inputs ids[:-1] are cut into windows of the context length from the start (the last may be
    shorter); window w reads ids[s : s + T] and is scored on ids[s + 1 : s + T + 1], as in training.
    `progress(done, total)` is called with the predicted tokens done so far; `cancelled()` true stops with
    LensCancelled."""
    ids = check_ids(model, token_ids, "passage", minimum=2)
    k = _top_k(top_k, model.config.vocab_size)
    context = model.config.context_length
    n = len(ids) - 1  # tokens predicted
    starts = list(range(0, n, context))
    data = torch.tensor(ids, dtype=torch.long)
    losses = np.empty(n, dtype=np.float32)
    top_ids = np.empty((n, k), dtype=np.int64)
    top_probs = np.empty((n, k), dtype=np.float32)
    full = [s for s in starts if s + context <= n]
    at_once = max(1, min(WINDOWS_AT_ONCE, LOGITS_AT_ONCE // (context * model.config.vocab_size)))
    groups = [full[i:i + at_once] for i in range(0, len(full), at_once)]
    groups += [[s] for s in starts if s + context > n]  # the shorter last window, alone
    done = 0
    device = _device(model)
    with _EvalMode(model):
        for group in groups:
            if cancelled is not None and cancelled():
                raise LensCancelled()
            length = min(context, n - group[0])
            x = torch.stack([data[s:s + length] for s in group]).to(device)
            y = torch.stack([data[s + 1:s + length + 1] for s in group]).to(device)
            logits = model(x).float()
            loss = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(y.shape)
            ti, tp = _top(logits, k)
            for row, s in enumerate(group):
                losses[s:s + length] = loss[row].cpu().numpy()
                top_ids[s:s + length] = ti[row]
                top_probs[s:s + length] = tp[row]
            done += length * len(group)
            if progress is not None:
                progress(done, n)
    return TokenLosses(ids=ids, losses=losses, top_ids=top_ids, top_probs=top_probs, window_starts=starts)


# ---------------------------------------------------------------------------------------------
# On a run's checkpoint (what the Pretraining workspace calls, off the GUI thread)


def token_text(tokenizer, token_id: int) -> str:
    """One token as the text it stands for."""
    return tokenizer.decode([int(token_id)])


def _name_tokens(result, tokenizer, model: GPT) -> None:
    """Fill a result's `tokens`, `names` (every id it shows) and `vocab_size` from the tokenizer."""
    shown = set(result.ids) | set(np.unique(result.top_ids).tolist())
    result.names = {int(i): token_text(tokenizer, i) for i in sorted(shown)}
    result.tokens = [result.names[i] for i in result.ids]
    result.vocab_size = int(model.config.vocab_size)


def compute_logit_lens(checkpoint: str, prompt: str, name: str = "",
                       top_k: int = DEFAULT_TOP_K) -> LensResult:
    """Load a checkpoint on the CPU and read the prompt through every layer (see `logit_lens`)."""
    from explorer.core.gpt.checkpoint import load_model

    if not prompt:
        raise LensError("type a prompt first")
    model, tokenizer, ckpt = load_model(checkpoint, "cpu")
    ids = tokenizer.encode(prompt)
    if not ids:
        raise LensError("none of the prompt's characters occur in this model's corpus: type other text")
    result = logit_lens(model, ids, top_k)
    _name_tokens(result, tokenizer, model)
    result.step, result.name = int(ckpt.step), name
    return result


def validation_passage(ckpt, tokenizer, n_tokens: int = PASSAGE_TOKENS) -> tuple[list[int], str]:
    """The first `n_tokens` tokens of the run's validation split (the corpus's tail that training never
    saw) and a note saying where they come from. LensError when the corpus cannot be read again."""
    from explorer.core.gpt.data import CorpusError, default_corpus, fingerprint, load_corpus

    settings = ckpt.settings
    path = settings.get("corpus_path")
    if ckpt.extra.get("corpus") == "text" and not path:
        raise LensError("this run trained on text that is not saved with it: there is no passage to score")
    try:
        text = load_corpus(path) if path else default_corpus()
    except CorpusError as exc:
        raise LensError(f"cannot read this run's corpus again: {exc}") from None
    fraction = settings.get("val_fraction", 0.1)
    if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0 < fraction < 1:
        fraction = 0.1
    # The validation split is the tail of the encoded corpus; a character tokenizer has one token per
    # character, so its split starts at the same share of the characters (for BPE, very nearly there).
    start = len(text) - int(len(text) * fraction)
    chars = n_tokens + 1 if getattr(tokenizer, "kind", "") == "char" else 16 * (n_tokens + 1)
    ids = list(tokenizer.encode(text[start:start + chars]))
    if getattr(tokenizer, "kind", "") != "char":
        ids = ids[:-1]  # the last token may be cut in the middle
    ids = ids[:n_tokens]
    corpus = "the built-in corpus" if not path else f"the corpus {Path(path).name}"
    note = (f"{len(ids)} tokens from the start of the validation split of {corpus} "
            "(text this run never trained on)")
    saved = ckpt.extra.get("corpus_fingerprint")
    if saved and saved != fingerprint(text):
        note += "; the corpus changed since the run trained, so this may not be its validation text"
    return ids, note


def compute_token_losses(checkpoint: str, name: str = "", n_tokens: int = PASSAGE_TOKENS,
                         top_k: int = DEFAULT_TOP_K, progress: Callable[[int, int], None] | None = None,
                         cancelled: Callable[[], bool] | None = None) -> TokenLosses:
    """Load a checkpoint on the CPU and score a passage of its run's validation text, token by token."""
    from explorer.core.gpt.checkpoint import load_model

    if isinstance(n_tokens, bool) or not isinstance(n_tokens, int) or not 2 <= n_tokens <= MAX_PASSAGE_TOKENS:
        raise LensError(f"the passage length must be a whole number from 2 to {MAX_PASSAGE_TOKENS}, "
                        f"got {n_tokens!r}")
    model, tokenizer, ckpt = load_model(checkpoint, "cpu")
    ids, note = validation_passage(ckpt, tokenizer, n_tokens)
    if len(ids) < 2:
        raise LensError("the run's validation text is too short to score")
    result = token_losses(model, ids, top_k, progress=progress, cancelled=cancelled)
    _name_tokens(result, tokenizer, model)
    result.step, result.name, result.note = int(ckpt.step), name, note
    return result
