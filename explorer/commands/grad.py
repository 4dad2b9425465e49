"""`python -m explorer grad (-e PROGRAM | FILE) [--json]`: gradients by autograd and finite differences.

Headless: imports torch and the core only, never Qt.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys

import numpy as np
import torch

from explorer.core import files
from explorer.core.numbers import fmt_fixed

HELP = "Print a program's output and each param's gradient by autograd and by finite differences."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments shared by the grad and graph commands: the program, inline or from a file."""
    add_program_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def add_program_arguments(parser: argparse.ArgumentParser) -> None:
    """`-e PROGRAM` or a FILE holding one."""
    parser.add_argument("file", nargs="?", metavar="FILE", help="a program file (.expr)")
    parser.add_argument(
        "-e", "--expr", metavar="PROGRAM",
        help="the program itself; separate statements with newlines or `;`",
    )  # fmt: skip


def load_program(args: argparse.Namespace):
    """Parse the program named by the arguments; bad input raises UserInputError (exit status 2)."""
    from explorer.cli import UserInputError
    from explorer.core.lang.program import parse

    if (args.expr is None) == (args.file is None):
        raise UserInputError("give a program with -e PROGRAM or a FILE (exactly one of them)")
    if args.expr is not None:
        # a shell's double quotes keep `\n` as two characters; the language has no other use for them
        source = args.expr.replace("\\n", "\n")
    else:
        try:
            source = files.read_text(args.file, "program")
        except files.FileProblem as exc:
            raise UserInputError(f"cannot read {args.file}: {str(exc).split(': ', 1)[-1]}") from None
        source = source.removeprefix("\ufeff")  # a byte-order mark from Windows editors is fine
    with program_errors(args):
        return parse(source)


@contextlib.contextmanager
def program_errors(args: argparse.Namespace):
    """Turn the language's ExprError into the command's one-line UserInputError, prefixed by the file."""
    from explorer.cli import UserInputError
    from explorer.core.lang.program import ExprError

    try:
        yield
    except ExprError as exc:
        where = f"{args.file}: " if args.file else ""
        raise UserInputError(f"{where}{exc}") from None


def run(args: argparse.Namespace) -> int:
    """Check the program's gradients and print them; exit status 2 for a bad program."""
    from explorer.core.autograd.gradcheck import compare_grads

    program = load_program(args)
    with program_errors(args):
        report = compare_grads(program)
    if args.json:
        print(json.dumps(json_safe(report_json(report)), allow_nan=False))
    else:
        if report.printed:
            sys.stdout.write(report.printed if report.printed.endswith("\n") else report.printed + "\n")
        print(report_text(report))
    return 0


def to_plain(t: torch.Tensor | None):
    """A tensor as a number (one element) or nested lists, for JSON; None stays None."""
    if t is None:
        return None
    t = t.detach()
    if t.is_floating_point() or t.is_complex():
        t = t.to(torch.float64)
    return t.item() if t.dim() == 0 else t.tolist()


def json_safe(value):
    """`value` with every NaN or infinity written as the string "nan", "inf" or "-inf", as the trace's
    JSON writes them: Python would write the bare words NaN and Infinity, which strict JSON readers
    reject, and null would read as "not computed" (finite differences skipped)."""
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def report_json(report) -> dict:
    """The --json object: output, grads, numeric_grads, max_abs_error (and max_rel_error)."""
    return {
        "output": {"name": report.output_name, "value": to_plain(report.output)},
        "grads": {n: to_plain(c.autograd) for n, c in report.params.items()},
        "numeric_grads": {n: to_plain(c.numeric) for n, c in report.params.items()},
        "max_abs_error": report.max_abs_error,
        "max_rel_error": report.max_rel_error,
        # the op table's hand-written local derivatives chained along the trace (null where one is missing)
        "manual_grads": {n: to_plain(c.manual) for n, c in report.params.items()},
        # what the program printed (print(...) and bare expression lines), in order
        "printed": report.printed,
    }


def _value(t: torch.Tensor) -> str:
    t = t.detach()
    if t.numel() == 1:
        value = t.reshape(-1)[0]
        return fmt_fixed(float(value)) if t.is_floating_point() else str(value.item())
    arr = t.to(torch.float64).numpy().round(4) + 0.0 if t.is_floating_point() else t.numpy()  # no -0.0
    text = np.array2string(arr, precision=4, suppress_small=True, max_line_width=100)
    return f"shape {tuple(t.shape)}\n" + "\n".join("    " + line for line in text.splitlines())


def report_text(report) -> str:
    """Human-readable lines: the output, each param's gradient two ways, the largest difference."""
    lines = [f"{report.output_name} = {_value(report.output)}"]
    if not report.params:
        lines.append("no leaf requires grad in the program: nothing to differentiate")
        return "\n".join(lines)
    if not report.differentiable:
        lines.append(f"note: `{report.output_name}` does not depend on any param through differentiable ops "
                     "(the params are unused, or a conversion to int64 cuts the graph), so autograd's "
                     "gradients are 0")
    for name, check in report.params.items():
        grad = f"dL/d{name}" if report.output_name == "L" else f"d{report.output_name}/d{name}"
        lines.append(f"{grad} = {_value(check.autograd)}")
        if check.numeric is None:
            lines.append(f"    finite differences skipped: {check.skipped}")
            continue
        if check.autograd.numel() == 1:
            auto, num = float(check.autograd.reshape(-1)[0]), float(check.numeric.reshape(-1)[0])
            lines.append(f"    autograd            {auto: .8g}")
            lines.append(f"    finite differences  {num: .8g}   (|difference| {check.max_abs_error:.1e})")
            if check.manual is not None:
                lines.append(f"    manual formula      {float(check.manual.reshape(-1)[0]): .8g}")
        else:
            lines.append(f"    finite differences agree to {check.max_abs_error:.2e} (largest |difference|)")
            if check.manual is not None:
                gap = (check.manual - check.autograd).abs()
                diff = float(gap.max()) if gap.numel() else 0.0  # a param with no elements
                lines.append(f"    the manual formulas agree to {diff:.2e}")
    lines.append(f"largest difference between autograd and finite differences: {report.max_abs_error:.2e}")
    return "\n".join(lines)
