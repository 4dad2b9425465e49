"""`python -m explorer train`: pretrain a GPT headless, printing progress (or one JSON line per step).

Every GPTConfig field and TrainSettings field has a flag named after it (`--n-layers 4`, `--lr 1e-3`);
values come from the preset, then `--config FILE.json`, then the flags.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import types
import typing
from pathlib import Path

from explorer.cli import UserInputError
from explorer.core import files
from explorer.core.gpt.checkpoint import CheckpointError
from explorer.core.gpt.child_process import clean_record
from explorer.core.gpt.data import CorpusError
from explorer.core.gpt.distributed import launched_by_torchrun, process_group, torchrun_argv
from explorer.core.gpt.model import PRESETS, ConfigError, GPTConfig, field_help, format_bytes
from explorer.core.gpt.train import BATCH_SPLITS, TRAIN_PRESETS, Trainer, TrainSettings

HELP = "Pretrain a small GPT on the built-in corpus or a text file (CPU, CUDA or MPS)."

# Flags with a shorter name than their setting; the long spelling works too.
ALIASES = {"corpus_path": ["--corpus"], "out_dir": ["--out"]}
CHOICES = {"device": None, "dtype": ["auto", "float32", "bfloat16"], "tokenizer": ["char", "bpe"],
           "optimizer_impl": ["auto", "fused", "foreach", "for-loop"], "batch_split": list(BATCH_SPLITS)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Preset, config file, one flag per model and training field, output and resume options."""
    parser.add_argument("--preset", default=None, choices=list(PRESETS), help="model and training preset "
                        "(default: tiny; with --resume the checkpoint's, which must then agree)")
    parser.add_argument("--config", metavar="FILE.json", help="JSON object of config and setting fields")
    parser.add_argument("--json", action="store_true", help="one JSON line per logged step on stdout")
    # Every record of the trainer as one JSON line (rank 0 only): how the Pretraining workspace follows a
    # run it launched on several GPUs through torchrun (explorer.core.gpt.child_process.train_on_ranks).
    parser.add_argument("--records", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--resume", metavar="CHECKPOINT", help="continue a run from a checkpoint to --steps")
    parser.add_argument("--overwrite", action="store_true", help="let --out name a folder that already "
                        "holds a run: its checkpoints and metrics are replaced (without it, refused)")
    parser.add_argument("--nproc", type=int, default=None, metavar="N", help="train on N processes (one per "
                        "GPU, or CPU ranks) through torchrun; the run also works under torchrun itself")
    add_field_flags(parser, GPTConfig, "model")
    add_field_flags(parser, TrainSettings, "training", skip={"save_every"})
    parser.add_argument("--save-every", dest="save_every", type=int, default=None, metavar="K",
                        help="with --out, also keep a checkpoint every K steps (step-K.safetensors)")


def add_field_flags(parser: argparse.ArgumentParser, cls, title: str, skip=frozenset()) -> None:
    """One `--field-name` flag per dataclass field, typed after the field, default None (= not given)."""
    group = parser.add_argument_group(f"{title} fields", "unset fields keep the preset's value")
    hints = typing.get_type_hints(cls)
    docs = field_help(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        names = [*ALIASES.get(f.name, []), f"--{f.name.replace('_', '-')}"]
        kind = _base_type(hints[f.name])
        help_text = docs.get(f.name, "").replace("%", "%%")
        if CHOICES.get(f.name):
            group.add_argument(*names, dest=f.name, choices=CHOICES[f.name], default=None, help=help_text)
        elif kind is bool:
            group.add_argument(*names, dest=f.name, action=argparse.BooleanOptionalAction, default=None,
                               help=help_text)
        else:
            group.add_argument(*names, dest=f.name, type=kind, default=None, help=help_text,
                               metavar=f.name.upper())


def _base_type(hint):
    # `int | None` -> int; the flags only need the concrete type to parse with.
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return hint


def given_fields(args: argparse.Namespace, cls) -> dict:
    """The fields of `cls` set explicitly by flags."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)
            if getattr(args, f.name, None) is not None}


def read_config_file(path: str | None) -> tuple[dict, dict]:
    """(model fields, training fields) of a JSON file: flat, or nested under "config"/"settings"."""
    if not path:
        return {}, {}
    try:
        data = json.loads(files.read_text(path, "config"))
    except files.FileProblem as exc:
        raise UserInputError(f"cannot read config file {path}: {str(exc).split(': ', 1)[-1]}") from None
    except (ValueError, RecursionError) as exc:
        raise UserInputError(f"config file {path} is not valid JSON: {str(exc)[:200]}") from None
    if not isinstance(data, dict):
        raise UserInputError(f"config file {path} must hold a JSON object")
    for key in ("config", "settings"):
        if not isinstance(data.get(key, {}), dict):
            raise UserInputError(f"config file {path}: \"{key}\" must hold a JSON object")
    flat = {**data.get("config", {}), **data.get("settings", {}),
            **{k: v for k, v in data.items() if k not in ("config", "settings", "preset")}}
    model_names = {f.name for f in dataclasses.fields(GPTConfig)}
    train_names = {f.name for f in dataclasses.fields(TrainSettings)}
    unknown = sorted(set(flat) - model_names - train_names)
    if unknown:
        shown = ", ".join(unknown).encode("utf-8", "backslashreplace").decode("utf-8")  # lone surrogates
        raise UserInputError(f"config file {path} has unknown fields: {shown}"[:300])
    return ({k: v for k, v in flat.items() if k in model_names},
            {k: v for k, v in flat.items() if k in train_names})


def build(args: argparse.Namespace) -> tuple[GPTConfig, TrainSettings]:
    """Preset, then config file, then flags; UserInputError for any invalid value."""
    file_model, file_train = read_config_file(getattr(args, "config", None))
    name = args.preset or "tiny"
    try:
        # a flag overrides the same field in the config file
        config = PRESETS[name].replace(**{**file_model, **given_fields(args, GPTConfig)}).validate()
        base = TRAIN_PRESETS.get(name, TrainSettings())
        settings = base.replace(**{**file_train, **given_fields(args, TrainSettings)})
        return config, settings.validate()
    except ConfigError as exc:
        raise UserInputError(str(exc)) from None


def check_out_dir(out_dir: str | None, overwrite: bool = False,
                  resuming: bool = False) -> files.FolderLock | None:
    """Create `--out`, prove it writable and take it for this process before step 1; clear what killed
    writes left there. Returns the folder's lock (held until this process ends; None without --out).

    Refused with one line: a folder another process is writing (its lock is held: a lock the kernel drops
    when that process ends, however it ends), and, unless `overwrite` or `resuming`, a folder that already
    holds a run (a checkpoint or metrics): a second run would silently replace the first one's files.
    With `overwrite` the earlier run's checkpoints and metrics are removed first.
    """
    if not out_dir or not _is_rank_zero():  # under torchrun only rank 0 writes
        return None
    problem = files.writable_folder_problem(out_dir)
    if problem:
        raise UserInputError(f"--out: {problem}")
    try:
        lock = files.FolderLock(out_dir)
    except files.FolderBusy:
        raise UserInputError(f"--out {out_dir}: another process is writing in this folder (a run still "
                             "training there?); wait for it to end or choose another folder") from None
    except files.FileProblem as exc:
        raise UserInputError(f"--out: {exc}") from None
    earlier = run_files(out_dir)
    if earlier and not (overwrite or resuming):
        lock.release()
        resume = Path(out_dir) / "checkpoint.safetensors"
        raise UserInputError(f"--out {out_dir} already holds a run ({earlier[0].name}); give --overwrite "
                             f"to replace it, --resume {resume} to continue it, or another folder")
    if overwrite:
        for path in earlier:
            path.unlink(missing_ok=True)
    files.remove_stale_temporaries(out_dir)
    return lock


def run_files(out_dir: str | os.PathLike) -> list[Path]:
    """The files of a run that `train --out` writes (checkpoints and metrics) already in `out_dir`."""
    try:
        entries = sorted(Path(out_dir).iterdir())
    except OSError:
        return []
    def written_by_a_run(p: Path) -> bool:
        step = p.name.startswith("step-") and p.suffix == ".safetensors"
        return p.is_file() and (step or p.name in ("checkpoint.safetensors", "metrics.csv"))

    return [p for p in entries if written_by_a_run(p)]


def _is_rank_zero() -> bool:
    """True outside torchrun, and on its rank 0 (the one rank that prints and writes)."""
    return os.environ.get("RANK", "0") == "0"


def _resume_out_dir(resume: str, saved_out: str | None, given_out: str | None, step: int) -> str | None:
    """Where a resumed run writes: never the folder of the run it resumes from.

    An explicit `--out` naming that folder is refused; without `--out`, a run whose saved out_dir is that
    folder writes to a new sibling folder (RUN-resumed-STEP, then -2, -3...), and says so on stderr.
    """
    out_dir = given_out if given_out is not None else saved_out
    if not out_dir:
        return out_dir
    source = Path(resume)
    if not source.exists() and source.with_name(source.name + ".safetensors").exists():
        source = source.with_name(source.name + ".safetensors")
    if Path(out_dir).resolve() != source.resolve().parent:
        return out_dir
    if given_out is not None:
        raise UserInputError(f"--resume {resume} would overwrite the run it resumes from in {out_dir}; "
                             f"give --out ANOTHER_FOLDER for the continued run")
    base = Path(out_dir).with_name(f"{Path(out_dir).resolve().name}-resumed-{step}")
    if not _is_rank_zero():  # only rank 0 writes: the others must not race it for a folder of their own
        return str(base)
    fresh, n = base, 1
    while fresh.exists():
        n += 1
        fresh = base.with_name(f"{base.name}-{n}")
    print(f"note: the run continues in {fresh}, so that {out_dir} (the run it resumes from) is kept; "
          f"--out DIR chooses another folder", file=sys.stderr, flush=True)
    return str(fresh)


def _check_save_every(settings: dict) -> None:
    if settings.get("save_every") and not settings.get("out_dir"):
        raise UserInputError("--save-every needs --out DIR to know where to keep the checkpoints")


def run(args: argparse.Namespace) -> int:
    """Train and report; 0 when the run finished, 1 when it stopped on an error, 2 for bad input."""
    if getattr(args, "nproc", None) is not None:
        return _launch_ranks(args)
    with process_group(getattr(args, "device", None) or "auto") as group:
        code = _run(args)
        group.ended_together = code == 0  # every rank finished its steps: they meet before the teardown
        return code


def _launch_ranks(args: argparse.Namespace) -> int:
    """`--nproc N`: run this same command on N ranks through torch.distributed.run; its exit status."""
    if args.nproc < 1:
        raise UserInputError(f"--nproc must be at least 1, got {args.nproc}")
    if launched_by_torchrun():
        raise UserInputError("--nproc cannot be used under torchrun (torchrun already chose the ranks)")
    forwarded = []
    for name in ("preset", "config", "resume", *(f.name for f in dataclasses.fields(GPTConfig)),
                 *(f.name for f in dataclasses.fields(TrainSettings))):
        value = getattr(args, name, None)
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            forwarded.append(flag if value else f"--no-{name.replace('_', '-')}")
        elif value is not None:
            forwarded += [flag, str(value)]
    if args.json:
        forwarded.append("--json")
    if getattr(args, "overwrite", False):
        forwarded.append("--overwrite")
    return subprocess.call(torchrun_argv(args.nproc, forwarded))


def _run(args: argparse.Namespace) -> int:
    lock = None
    try:
        if args.resume:
            trainer, lock = _resume(args)
        else:
            config, settings = build(args)
            _check_save_every(settings.to_dict())
            if settings.tokenizer == "char" and getattr(args, "vocab_size", None) is not None:
                print("note: --vocab-size is ignored with the char tokenizer (the corpus decides the "
                      "vocabulary); use --tokenizer bpe to choose it", file=sys.stderr)
            lock = check_out_dir(settings.out_dir, overwrite=getattr(args, "overwrite", False))
            trainer = Trainer(config, settings)
    except (ConfigError, CorpusError, CheckpointError) as exc:
        if lock is not None:
            lock.release()
        raise UserInputError(str(exc)) from None
    try:
        return _train(args, trainer)
    finally:
        trainer.close()  # the helper processes of a batch split over processes end with the command
        if lock is not None:
            lock.release()


def _train(args: argparse.Namespace, trainer: Trainer) -> int:
    printer = RecordPrinter() if args.records else JsonPrinter() if args.json else TextPrinter()
    if trainer.rank != 0:  # under torchrun, rank 0 speaks for the run; the others only report errors
        printer = ErrorPrinter(trainer.rank)
    interrupts = InterruptToStop(trainer)
    try:
        with interrupts:
            for record in trainer.run():
                if record["type"] == "error" and record.get("kind") == "input" and not args.records:
                    printer.close()  # said once, by the CLI's "error:" line (the printer would say it too)
                    raise UserInputError(record["message"])
                printer.add(record)
                if record["type"] == "error":
                    printer.close()
                    if record.get("kind") == "input":
                        raise UserInputError(record["message"])
                    return 1
                if record["type"] == "stopped" and interrupts.count:
                    printer.close()
                    _report_interrupt(trainer, record)
                    return EXIT_INTERRUPTED
    except KeyboardInterrupt:  # a second Ctrl-C, or one that arrived outside the handler
        printer.close()
        _report_interrupt(trainer, trainer.write_outputs_after_interrupt())
        return EXIT_INTERRUPTED
    printer.close()
    return 0


EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for a Ctrl-C


class InterruptToStop:
    """While active, the first Ctrl-C asks the trainer to stop after its step (which saves with --out);
    the next one raises KeyboardInterrupt as usual. Only the main thread can own the handler."""

    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer
        self.count = 0
        self._previous = None

    def __enter__(self) -> InterruptToStop:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def _on_sigint(self, signum, frame) -> None:
        self.count += 1
        if self.count > 1:
            raise KeyboardInterrupt
        self.trainer.request_stop()
        print("interrupted: stopping after this step (Ctrl-C again to stop at once)", file=sys.stderr,
              flush=True)


def _report_interrupt(trainer: Trainer, record: dict) -> None:
    """Say on stderr where an interrupted run's progress went."""
    where = record.get("checkpoint_path")
    if where:
        print(f"interrupted at step {trainer.step}: checkpoint written to {where} "
              f"(continue with --resume {where})", file=sys.stderr, flush=True)
    elif record.get("unsafe"):
        print(f"interrupted during an optimizer update at step {trainer.step + 1}: no final checkpoint "
              "(the weights were half-updated); the last --save-every checkpoint is the latest",
              file=sys.stderr, flush=True)
    else:
        print(f"interrupted at step {trainer.step}: nothing saved (use --out DIR to keep checkpoints)",
              file=sys.stderr, flush=True)


def _resume(args: argparse.Namespace) -> tuple[Trainer, files.FolderLock | None]:
    """The checkpoint's trainer; flags may change training settings, model flags must agree with it."""
    from explorer.core.gpt.checkpoint import read_checkpoint
    from explorer.core.gpt.data import load_corpus

    saved = read_checkpoint(args.resume)
    file_model, file_train = read_config_file(getattr(args, "config", None))
    from_preset = PRESETS[args.preset].to_dict() if args.preset else {}
    wanted = {**from_preset, **file_model, **given_fields(args, GPTConfig)}
    wanted.pop("vocab_size", None)  # the saved tokenizer decides the vocabulary
    clash = {k: v for k, v in wanted.items() if getattr(saved.config, k) != v}
    if clash:
        shown = ", ".join(f"{k} is {getattr(saved.config, k)} in the checkpoint but {v} was asked" for k, v in
                          clash.items())
        raise UserInputError(f"{args.resume} does not match the requested model: {shown}")
    overrides = {**file_train, **given_fields(args, TrainSettings)}
    _check_save_every({**saved.settings, **overrides})
    saved_out = saved.settings.get("out_dir")
    if saved_out is not None and not isinstance(saved_out, str):
        raise UserInputError(f"{args.resume}: its out_dir is not a path")
    out_dir = _resume_out_dir(args.resume, saved_out, overrides.get("out_dir"), saved.step)
    if out_dir != overrides.get("out_dir", saved_out):
        overrides["out_dir"] = out_dir
    lock = check_out_dir(out_dir, overwrite=getattr(args, "overwrite", False), resuming=True)
    try:
        corpus = load_corpus(overrides["corpus_path"]) if overrides.get("corpus_path") else None
        return Trainer.load_checkpoint(args.resume, corpus=corpus, settings=overrides), lock
    except BaseException:
        if lock is not None:
            lock.release()
        raise


def start_line(r: dict) -> str:
    """One line describing the run a "start" record announces."""
    c = r["config"]
    return (f"{r['parameters']:,} parameters ({c['n_layers']} layers, {c['n_heads']} heads, "
            f"emb {c['emb_dim']}, context {c['context_length']}, {r['tokenizer']} vocab {c['vocab_size']}) "
            f"on {r['device']} "
            f"({r['dtype']}); {r['train_tokens']:,} training tokens; from step {r['step']}"
            + split_note(r) + (f"; {r['dtype_note']}" if r.get("dtype_note") else "")
            + (f"; {r['compile_note']}" if r.get("compile_note") else ""))


def split_note(r: dict) -> str:
    """How the start record says each batch is shared between the cores ("" when it is not split)."""
    parts, mode = r.get("batch_parts") or 1, r.get("batch_mode")
    if parts <= 1 or mode not in ("processes", "threads"):
        return ""
    helpers = "a helper process" if parts == 2 else f"{parts - 1} helper processes"
    where = f"this process and {helpers}" if mode == "processes" else f"{parts} threads"
    return f"; each batch split in {parts} parts, one core each ({where})"


class TextPrinter:
    """Readable progress lines on stdout."""

    def add(self, r: dict) -> None:
        """Print one record."""
        kind = r["type"]
        if kind == "start":
            print(start_line(r))
        elif kind == "step":
            print(f"step {r['step']:>6}  loss {r['train_loss']:.4f}  lr {r['lr']:.2e}  "
                  f"grad norm {r['grad_norm']:.3f}  {r['tokens_per_s']:,.0f} tokens/s"
                  + (f"  MFU {r['mfu']:.1%}" if r.get("mfu") is not None else "")
                  + (f"  {r['step_s'] * 1000:.0f} ms/step" if r.get("step_s") is not None else "")
                  + (f"  peak {format_bytes(r['peak_memory'])}" if r.get("peak_memory") else ""))
        elif kind == "eval":
            print(f"step {r['step']:>6}  train loss {r['train_loss']:.4f}  val loss {r['val_loss']:.4f}")
        elif kind == "sample":
            print(f"--- sample at step {r['step']} ---\n{r['text']}\n---")
        elif kind == "checkpoint":
            print(f"saved {r['path']}")
        elif kind in ("done", "stopped", "error", "warning"):
            print(f"{kind}: {r['message']}", file=sys.stderr if kind in ("error", "warning") else sys.stdout)
            for key in ("checkpoint_path", "metrics_path", "histograms_path"):
                if key in r:
                    print(f"wrote {r[key]}")
        sys.stdout.flush()

    def close(self) -> None:
        """Nothing buffered."""


class RecordPrinter:
    """Every record as one JSON line on stdout, exactly as the trainer gave it (for a parent process)."""

    def add(self, r: dict) -> None:
        """Print one record."""
        print(json.dumps(clean_record(r)), flush=True)

    def close(self) -> None:
        """Nothing buffered."""


class ErrorPrinter:
    """Only error records, on stderr, prefixed with the rank (the printer of ranks other than 0)."""

    def __init__(self, rank: int):
        self.rank = rank

    def add(self, r: dict) -> None:
        """Print an error record; ignore the rest."""
        if r["type"] == "error":
            print(f"error (rank {self.rank}): {r['message']}", file=sys.stderr, flush=True)

    def close(self) -> None:
        """Nothing buffered."""


class JsonPrinter:
    """One JSON line per logged step on stdout (with that step's eval and sample); the rest on stderr."""

    def __init__(self):
        self.pending: dict | None = None
        self.initial: dict = {}

    def add(self, r: dict) -> None:
        """Merge or print one record."""
        kind = r["type"]
        if kind == "step":
            self._flush()
            keys = ("step", "tokens", "train_loss", "lr", "grad_norm", "tokens_per_s", "mfu", "step_s",
                    "peak_memory", "peak_memory_kind", "block_grad_norms", "update_ratios")
            self.pending = {"type": "step", **{k: r[k] for k in keys if k in r}, **self.initial}
            self.initial = {}
        elif kind == "start":
            print(start_line(r), file=sys.stderr)
        elif kind == "eval" and self.pending is not None and self.pending["step"] == r["step"]:
            self.pending["val_loss"] = r["val_loss"]
            self.pending["eval_train_loss"] = r["train_loss"]
        elif kind == "eval":  # before the first step: the untrained model's losses
            self.initial = {"initial_val_loss": r["val_loss"], "initial_train_loss": r["train_loss"]}
            print(f"step {r['step']}: train loss {r['train_loss']:.4f}, val loss {r['val_loss']:.4f}",
                  file=sys.stderr)
        elif kind == "sample" and self.pending is not None and self.pending["step"] == r["step"]:
            self.pending["sample"] = r["text"]
        elif kind in ("done", "stopped", "error", "warning", "checkpoint"):
            self._flush()
            print(f"{kind}: {r.get('message', r.get('path', ''))}", file=sys.stderr)

    def close(self) -> None:
        """Print what is still pending."""
        self._flush()

    def _flush(self) -> None:
        if self.pending is not None:
            print(json.dumps(self.pending), flush=True)
            self.pending = None
