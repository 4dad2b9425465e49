"""A pretraining configuration as one self-contained PyTorch training script.

The script holds its own GPT (token and position embeddings, pre-LayerNorm blocks of causal attention and a
GELU MLP, a final norm and a linear head), its own character tokenizer and batches, and the training loop of
`explorer.core.gpt.train.Trainer`: AdamW with decay on matrices only, linear warm-up then cosine decay,
gradient accumulation and clipping. Modules are created and initialised in the order ours are, and the
random numbers are drawn in the same order, so with the same seed the losses are the Trainer's.
"""

from __future__ import annotations

import dataclasses
import inspect
import textwrap

from explorer.core.export.notebook import Document, Section
from explorer.core.gpt import data as gpt_data
from explorer.core.gpt.model import GPTConfig, field_help
from explorer.core.gpt.train import CPU_BF16_MIN_SPEEDUP, CPU_BF16_MIN_WIDTH, TrainSettings

# the training settings the script uses (the others are the app's: logging, files, threads, batch split,
# compile)
SCRIPT_SETTINGS = ("steps", "batch_size", "grad_accum_steps", "lr", "min_lr", "warmup_steps", "weight_decay",
                   "beta1", "beta2", "grad_clip", "eval_every", "eval_batches", "sample_tokens",
                   "sample_prompt", "temperature", "top_k", "seed", "val_fraction", "device",
                   "dtype", "optimizer_impl")


def gpt_document(config: GPTConfig, settings: TrainSettings, corpus_path: str | None = None,
                 title: str = "Pretraining") -> Document:
    """The configuration, settings and corpus (a file path, or None for the built-in corpus) as a Document."""
    config = config.validate()
    settings = settings.validate()
    corpus_path = corpus_path if corpus_path is not None else settings.corpus_path
    doc = Document(
        f"{title}: exported from Autograd Explorer",
        "A GPT trained from scratch with torch alone, with the configuration, the training settings and "
        "the corpus of the Pretraining workspace. Run it with `python <this file>`: it prints the "
        "training loss of every step, the validation loss now and then, and a sample of generated text "
        "at the end. With the same seed, on the CPU, the losses are the ones the app's trainer "
        "reports.",
    )
    doc.sections.append(Section("Imports", "torch alone, and the standard library.", _IMPORTS))
    doc.sections.append(Section("Configuration", "The model's shape and how to train it, as set in the "
                                "app. `vocab_size` follows the tokenizer.", _config_code(config, settings)))
    doc.sections.append(Section("Corpus and tokenizer", _corpus_text(corpus_path, settings),
                                _corpus_code(corpus_path, settings)))
    doc.sections.append(Section("The model", "Token and position embeddings, `n_layers` pre-LayerNorm "
                                "blocks (causal self-attention, then a GELU MLP, each added to the "
                                "residual stream), a final LayerNorm and a linear head giving next-token "
                                "logits. Weights start from N(0, 0.02), the residual projections smaller.",
                                _MODEL))
    doc.sections.append(Section("Training", "AdamW (weight decay on matrices and embeddings only), a "
                                "linear warm-up then a cosine decay of the learning rate, gradients "
                                "accumulated over micro-batches and clipped to a global norm.",
                                _TRAIN.replace("CPU_BF16_MIN_WIDTH", str(CPU_BF16_MIN_WIDTH))
                                .replace("CPU_BF16_MIN_SPEEDUP", str(CPU_BF16_MIN_SPEEDUP))))
    doc.sections.append(Section("A sample", "The trained model continues the prompt one token at a time, "
                                "sampling from its softmax at the chosen temperature.", _SAMPLE))
    return doc


def workspace_document(ws) -> Document:
    """The pretraining workspace's form (config, settings, corpus) as a Document."""
    state = ws.state
    config = GPTConfig.from_dict(state.config)
    settings = TrainSettings.from_dict(state.settings)
    title = f"Pretraining ({state.preset})" if state.preset != "custom" else "Pretraining"
    return gpt_document(config, settings, state.corpus, title=title)


# -- pieces ------------------------------------------------------------------------------------------

_IMPORTS = """\
import math
import re
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn"""


def _config_code(config: GPTConfig, settings: TrainSettings) -> str:
    model_help = field_help(GPTConfig)
    train_help = field_help(TrainSettings)
    lines = ["@dataclass", "class GPTConfig:", '    """The shape of the model."""', ""]
    for f in dataclasses.fields(GPTConfig):
        value = getattr(config, f.name)
        if f.name == "hidden_dim" and value == 4 * config.emb_dim:
            value = None  # then it follows emb_dim, as in the app
        lines += _field(f.name, _type_name(f.type), value, model_help.get(f.name, ""))
    lines += ["", "", "@dataclass", "class TrainSettings:", '    """How to train it."""', ""]
    for name in SCRIPT_SETTINGS:
        f = next(f for f in dataclasses.fields(TrainSettings) if f.name == name)
        lines += _field(name, _type_name(f.type), getattr(settings, name), train_help.get(name, ""))
    lines += ["", "", "config = GPTConfig()", "settings = TrainSettings()"]
    return "\n".join(lines)


def _field(name: str, kind: str, value, help_text: str, width: int = 100) -> list[str]:
    """A dataclass field with its help as a comment: beside it when it fits, else on the lines above."""
    line = f"    {name}: {kind} = {value!r}"
    if not help_text:
        return [line]
    if len(line) + 4 + len(help_text) <= width:
        return [f"{line}  # {help_text}"]
    return [*textwrap.wrap(help_text, width, initial_indent="    # ", subsequent_indent="    # "), line]


def _type_name(hint) -> str:
    return str(hint).replace("typing.", "").replace("<class '", "").replace("'>", "")


def _corpus_text(corpus_path: str | None, settings: TrainSettings) -> str:
    where = (f"the text file `{_file_name(corpus_path)}` (change `CORPUS_PATH` when it moves)"
             if corpus_path else
             "the English prose of the Python Language Reference that every Python installation carries "
             "for `help()`, as the app reads it")
    if settings.tokenizer == "char":
        how = "One token per distinct character, in code-point order, as the app's character tokenizer."
    else:
        how = ("A byte-level BPE trained on the corpus with Hugging Face `tokenizers` (the one library "
               "besides torch this script needs, as the app does for BPE).")
    return (f"The corpus is {where}. {how} The last `val_fraction` of the tokens is held out for "
            "validation; a batch is random windows of `context_length + 1` tokens.")


def _file_name(path: str) -> str:
    from pathlib import Path

    return Path(path).name


def _corpus_code(corpus_path: str | None, settings: TrainSettings) -> str:
    normalise = inspect.getsource(gpt_data._normalise).replace("def _normalise", "def normalise")
    if corpus_path:
        read = "\n".join([
            f"CORPUS_PATH = {str(corpus_path)!r}",
            "",
            "",
            normalise.rstrip(),
            "",
            "",
            "with open(CORPUS_PATH, encoding=\"utf-8-sig\") as f:",
            "    text = normalise(f.read())",
        ])
    else:
        prose = inspect.getsource(gpt_data._prose_only).replace("def _prose_only", "def prose_only")
        read = "\n".join([
            "from pydoc_data.topics import topics  # the Python Language Reference's prose, for help()",
            "",
            "",
            normalise.rstrip(),
            "",
            "",
            prose.rstrip(),
            "",
            "",
            'text = prose_only(normalise("\\n\\n".join(topics[key].strip() for key in sorted(topics))))',
        ])
    if settings.tokenizer == "char":
        tokenizer = "\n".join([
            "chars = \"\".join(sorted(set(text)))",
            "index = {ch: i for i, ch in enumerate(chars)}",
            "",
            "",
            "def encode(s):",
            "    return [index[ch] for ch in s if ch in index]",
            "",
            "",
            "def decode(ids):",
            "    return \"\".join(chars[i] for i in ids)",
            "",
            "",
            "config.vocab_size = len(chars)",
        ])
    else:
        tokenizer = "\n".join([
            "from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers",
            "",
            "bpe = Tokenizer(models.BPE())",
            "bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)",
            "bpe.decoder = decoders.ByteLevel()",
            "bpe.train_from_iterator(text.splitlines(keepends=True), trainer=trainers.BpeTrainer(",
            "    vocab_size=config.vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),",
            "    show_progress=False))",
            "",
            "",
            "def encode(s):",
            "    return bpe.encode(s).ids",
            "",
            "",
            "def decode(ids):",
            "    return bpe.decode(list(ids))",
            "",
            "",
            "config.vocab_size = bpe.get_vocab_size()",
        ])
    split = "\n".join([
        "ids = torch.tensor(encode(text), dtype=torch.long)",
        "n_val = int(len(ids) * settings.val_fraction)",
        "train_ids, val_ids = ids[: len(ids) - n_val], ids[len(ids) - n_val :]",
        'print(f"{len(text):,} characters, {config.vocab_size} tokens in the vocabulary, "',
        '      f"{len(train_ids):,} for training, {len(val_ids):,} for validation")',
        "",
        "",
        "def get_batch(split, generator):",
        '    """Random windows: inputs x and next-token targets y, each (batch_size, context_length)."""',
        '    data = train_ids if split == "train" else val_ids',
        "    T = config.context_length",
        "    starts = torch.randint(len(data) - T - 1, (settings.batch_size,), generator=generator)",
        "    windows = data[starts[:, None] + torch.arange(T + 1)]  # (B, T + 1)",
        "    return windows[:, :-1].to(device), windows[:, 1:].to(device)",
    ])
    return f"{read}\n\n\n{tokenizer}\n\n\n{split}"


_MODEL = '''\
class CausalSelfAttention(nn.Module):
    """Multi-head attention in which each position looks only at itself and earlier positions."""

    def __init__(self, cfg):
        super().__init__()
        self.n_heads = cfg.n_heads
        self.drop_rate = cfg.drop_rate
        self.qkv = nn.Linear(cfg.emb_dim, 3 * cfg.emb_dim, bias=cfg.qkv_bias)
        self.proj = nn.Linear(cfg.emb_dim, cfg.emb_dim)
        self.resid_drop = nn.Dropout(cfg.drop_rate)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        # (B, T, C) -> (B, nh, T, hs)
        q, k, v = (t.view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2) for t in (q, k, v))
        drop = self.drop_rate if self.training else 0.0
        if q.device.type == "cpu" and q.dtype == torch.bfloat16:
            # PyTorch's CPU attention kernel is slow in bf16 (its backward above all): run it in float32
            with torch.autocast("cpu", enabled=False):
                y = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), dropout_p=drop,
                                                   is_causal=True).to(q.dtype)
        else:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=drop, is_causal=True)  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_drop(self.proj(y))


class MLP(nn.Module):
    """Expand, GELU, project back: the same for every position."""

    def __init__(self, cfg):
        super().__init__()
        hidden = cfg.hidden_dim or 4 * cfg.emb_dim
        self.fc = nn.Linear(cfg.emb_dim, hidden)
        self.act = nn.GELU()
        self.proj = nn.Linear(hidden, cfg.emb_dim)
        self.drop = nn.Dropout(cfg.drop_rate)

    def forward(self, x):
        return self.drop(self.proj(self.act(self.fc(x))))


class Block(nn.Module):
    """x + attention(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, cfg):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.emb_dim)
        self.attn = CausalSelfAttention(cfg)
        self.norm2 = nn.LayerNorm(cfg.emb_dim)
        self.mlp = MLP(cfg)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class GPT(nn.Module):
    """Token ids (B, T) -> next-token logits (B, T, vocab_size)."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.emb_dim)
        self.pos_emb = nn.Embedding(cfg.context_length, cfg.emb_dim)
        self.drop = nn.Dropout(cfg.drop_rate)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.final_norm = nn.LayerNorm(cfg.emb_dim)
        self.out_head = nn.Linear(cfg.emb_dim, cfg.vocab_size, bias=False)
        if cfg.tie_weights:
            self.out_head.weight = self.tok_emb.weight  # the head reads the embedding matrix
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        # each block adds two branches to the residual stream: smaller projections keep its variance
        for block in self.blocks:
            nn.init.normal_(block.attn.proj.weight, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layers))
            nn.init.normal_(block.mlp.proj.weight, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layers))

    def forward(self, idx):
        T = idx.shape[1]
        pos = torch.arange(T, device=idx.device)
        x = self.drop(self.tok_emb(idx) + self.pos_emb(pos))  # (B, T, C)
        for block in self.blocks:
            x = block(x)
        return self.out_head(self.final_norm(x))

    def loss(self, idx, targets):
        """Mean cross-entropy of the next token, in float32."""
        logits = self(idx)
        return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())'''


_TRAIN = '''\
if settings.device == "auto":
    device = torch.device("cuda" if torch.cuda.is_available() else
                          "mps" if torch.backends.mps.is_available() else "cpu")
else:
    device = torch.device(settings.device)
# dtype "auto": bf16 autocast on a GPU that has it; on a CPU only where it measures faster (with AMX its
# matrix products run several times faster than float32, ~2.4x with avx512_bf16 on an AMD Zen 4, slower on
# other CPUs), as the app decides: one of the model's blocks, forward and backward, timed in both
# precisions on one thread, bf16 from CPU_BF16_MIN_SPEEDUPx; never below CPU_BF16_MIN_WIDTH wide (there the
# casts cost about what faster products save)
def cpu_bf16_is_faster(rows=6, repeats=3):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    best = {False: math.inf, True: math.inf}
    with torch.random.fork_rng(devices=[]):
        block = Block(config)
        x = torch.randn(rows, config.context_length, config.emb_dim)
        for _ in range(repeats + 1):  # the first pass of each builds oneDNN's kernels: the best time counts
            for low in (False, True):
                start = time.perf_counter()
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=low):
                    block(x).float().sum().backward()
                best[low] = min(best[low], time.perf_counter() - start)
    torch.set_num_threads(threads)
    return best[False] >= CPU_BF16_MIN_SPEEDUP * best[True]


cpu_bf16 = (settings.dtype == "auto" and device.type == "cpu" and config.emb_dim >= CPU_BF16_MIN_WIDTH
            and cpu_bf16_is_faster())
use_bf16 = settings.dtype == "bfloat16" or settings.dtype == "auto" and (
    (device.type == "cuda" and torch.cuda.is_bf16_supported()) or cpu_bf16)

torch.manual_seed(settings.seed)  # the initial weights, then the dropout masks
model = GPT(config).to(device)
print(f"{sum(p.numel() for p in model.parameters()):,} parameters on {device}")
params = [p for p in model.parameters() if p.requires_grad]
groups = [
    {"params": [p for p in params if p.dim() >= 2], "weight_decay": settings.weight_decay},
    {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},  # biases and norms
]
impl = settings.optimizer_impl
if impl == "auto":
    impl = "fused" if device.type in ("cuda", "cpu") else "foreach"
kernel = {"fused": True} if impl == "fused" else {"foreach": impl == "foreach"}
optimizer = torch.optim.AdamW(groups, lr=settings.lr, betas=(settings.beta1, settings.beta2), **kernel)
batch_generator = torch.Generator().manual_seed(settings.seed)  # which windows each step trains on


def lr_at(step):
    """Linear warm-up to lr, then a cosine down to min_lr (lr / 10 unless set)."""
    min_lr = settings.lr / 10 if settings.min_lr is None else settings.min_lr
    if step < settings.warmup_steps:
        return settings.lr * (step + 1) / settings.warmup_steps
    progress = min(1.0, (step - settings.warmup_steps) / max(1, settings.steps - settings.warmup_steps))
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (settings.lr - min_lr)


def autocast():
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_bf16)


@torch.no_grad()
def evaluate():
    """Mean loss over eval_batches fixed batches of each split (the same batches every time)."""
    generator = torch.Generator().manual_seed(settings.seed + 10_007)
    model.eval()
    out = {}
    for split in ("train", "val"):
        total = 0.0
        for _ in range(settings.eval_batches):
            x, y = get_batch(split, generator)
            with autocast():
                total += model.loss(x, y).float().item()
        out[split] = total / settings.eval_batches
    model.train()
    return out


for step in range(settings.steps):
    if settings.eval_every and step % settings.eval_every == 0:
        losses = evaluate()
        print(f"step {step}: validation loss {losses['val']:.4f} (train {losses['train']:.4f})")
    for group in optimizer.param_groups:
        group["lr"] = lr_at(step)
    total = 0.0
    for micro in range(settings.grad_accum_steps):
        x, y = get_batch("train", batch_generator)
        with autocast():
            loss = model.loss(x, y)
        (loss / settings.grad_accum_steps).backward()  # gradients add up over the micro-batches
        total += loss.item()
    clip = settings.grad_clip if settings.grad_clip > 0 else float("inf")
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip).item()
    train_loss = total / settings.grad_accum_steps
    if not (math.isfinite(train_loss) and math.isfinite(grad_norm)):
        print(f"step {step + 1}: the loss became {train_loss}: lower the learning rate")
        break
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    print(f"step {step + 1}: train loss {train_loss!r}, lr {lr_at(step):.2e}, grad norm {grad_norm:.3f}")
if settings.eval_every:
    losses = evaluate()
    print(f"step {settings.steps}: validation loss {losses['val']:.4f} (train {losses['train']:.4f})")'''


_SAMPLE = '''\
@torch.no_grad()
def generate(idx, max_new_tokens, temperature=1.0, top_k=0, generator=None):
    """Extend idx (1, T) by sampling one token at a time from the model's prediction."""
    model.eval()
    for _ in range(max_new_tokens):
        logits = model(idx[:, -config.context_length :])[:, -1, :].float()
        if temperature <= 0:
            nxt = logits.argmax(dim=-1, keepdim=True)
        else:
            logits = logits / temperature
            if top_k:
                kth = torch.topk(logits, min(top_k, logits.shape[-1])).values[:, -1:]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            probs = logits.softmax(dim=-1).cpu()
            nxt = torch.multinomial(probs, 1, generator=generator).to(device)
        idx = torch.cat([idx, nxt], dim=1)
    model.train()
    return idx


prompt = settings.sample_prompt or "\\n"
start = torch.tensor([encode(prompt) or [0]], dtype=torch.long, device=device)
out = generate(start, settings.sample_tokens, settings.temperature, settings.top_k,
               torch.Generator().manual_seed(settings.seed + settings.steps))
print(settings.sample_prompt + decode(out[0, start.shape[1] :].tolist()))'''
