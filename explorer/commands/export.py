"""`python -m explorer export (-e PROGRAM | FILE | --network P | --gpt P) --to script|notebook -o PATH`.

Writes what a workspace would export (see `explorer.core.export`): a program, a network preset or a GPT
preset, as a runnable PyTorch script or a notebook. `--gpt` takes the same model and training flags as
`train` (and `--config FILE.json`), defined once there. Headless: imports torch and the core only.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from explorer.cli import UserInputError
from explorer.commands import grad, train
from explorer.core import files
from explorer.core.gpt.model import GPTConfig
from explorer.core.gpt.train import TrainSettings

HELP = "Write a program, a network or a GPT configuration as a runnable PyTorch script or notebook."
FORMATS = ("script", "notebook")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """What to export (one of four sources), the format and the output file; train's config flags."""
    grad.add_program_arguments(parser)
    parser.add_argument("--network", metavar="PRESET", help="a network preset (seed, mlp-50-30-20-3, toy-2d)")
    parser.add_argument("--gpt", metavar="PRESET", help="a GPT preset (tiny, small, gpt2-124m), changed by "
                        "the model and training flags below")
    parser.add_argument("--to", default="script", metavar="FORMAT", help="script (a .py file, the default) "
                        "or notebook (an .ipynb file)")
    parser.add_argument("-o", "--output", metavar="PATH", help="the file to write")
    parser.add_argument("--config", metavar="FILE.json", help="with --gpt: JSON object of config and "
                        "setting fields")
    train.add_field_flags(parser, GPTConfig, "model (with --gpt)")
    train.add_field_flags(parser, TrainSettings, "training (with --gpt)")


def run(args: argparse.Namespace) -> int:
    """Generate the export and write it atomically; UserInputError (exit 2) for bad input."""
    from explorer.core.export import ExportError, export_document
    from explorer.core.export.notebook import to_notebook, to_script

    if args.to not in FORMATS:
        raise UserInputError(f"--to must be script or notebook, got {args.to!r}")
    if not args.output:
        raise UserInputError("give the file to write with -o PATH")
    sources = [args.expr is not None or args.file is not None, args.network is not None, args.gpt is not None]
    if sum(sources) != 1:
        raise UserInputError("give exactly one of -e PROGRAM, FILE, --network PRESET or --gpt PRESET")
    flags = _config_flags(args)
    if flags and args.gpt is None:
        flag = flags[0].replace("_", "-")
        raise UserInputError(f"--{flag} is a model or training flag: it goes with --gpt")
    try:
        if args.network is not None:
            doc = export_document("network", _network_workspace(args.network))
        elif args.gpt is not None:
            doc = _gpt_document(args)
        else:
            program = grad.load_program(args)
            title = None
            if args.file:
                from explorer.core.lang.examples import example_title

                title = example_title(program.source, Path(files.display_name(args.file)).stem)
            doc = export_document("expression", program.source, title=title)
    except ExportError as exc:
        raise UserInputError(str(exc)) from None
    text = to_script(doc) if args.to == "script" else _notebook_json(to_notebook(doc))
    try:
        path = files.write_atomic(args.output, text)
    except files.FileProblem as exc:
        where = files.display_name(args.output, whole=True)
        raise UserInputError(f"cannot write {where}: {str(exc).split(': ', 1)[-1]}") from None
    print(f"wrote {files.display_name(path, whole=True)} ({args.to}, {len(text.splitlines())} lines)")
    return 0


def _config_flags(args: argparse.Namespace) -> list[str]:
    """The model and training flags given on the command line (or a --config file)."""
    given = [*train.given_fields(args, GPTConfig), *train.given_fields(args, TrainSettings)]
    return given + (["config"] if args.config else [])


def _network_workspace(name: str):
    from explorer.core.mlp.network import PRESETS
    from explorer.core.workspaces.network import NetworkWorkspace

    if name not in PRESETS:
        raise UserInputError(f"unknown network preset {name!r}; choose one of {', '.join(PRESETS)}")
    ws = NetworkWorkspace()
    ws.set_preset(name)
    return ws


def _gpt_document(args: argparse.Namespace):
    from explorer.core.export.gpt import gpt_document
    from explorer.core.gpt.model import PRESETS

    if args.gpt not in PRESETS:
        raise UserInputError(f"unknown GPT preset {args.gpt!r}; choose one of {', '.join(PRESETS)}")
    config, settings = train.build(_with_preset(args))
    if settings.corpus_path:
        problem = files.regular_file_problem(settings.corpus_path, "corpus")
        if problem:
            raise UserInputError(f"corpus {settings.corpus_path}: {problem}")
    return gpt_document(config, settings, settings.corpus_path, title=f"Pretraining ({args.gpt})")


def _with_preset(args: argparse.Namespace) -> argparse.Namespace:
    """The arguments as `train.build` reads them: the preset under its `--preset` name."""
    return argparse.Namespace(**{**vars(args), "preset": args.gpt})


def _notebook_json(nb) -> str:
    from explorer.core.export import notebook_text

    return notebook_text(nb)
