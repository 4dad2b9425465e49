"""`python -m explorer graph (-e PROGRAM | FILE) --format json|dot|svg|png -o PATH`: the traced graph.

json and dot are written here without Qt; svg and png are drawn by the app's own canvas
(`explorer.ui.graph.render`), imported only for those formats.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from explorer.commands.grad import add_program_arguments, json_safe, load_program, program_errors
from explorer.core import files
from explorer.core.numbers import fmt_significant

HELP = "Trace a program forward and backward and write its graph (json, dot, svg or png)."

FORMATS = ("json", "dot", "svg", "png")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The program, the output format and the output path."""
    add_program_arguments(parser)
    parser.add_argument("--format", choices=FORMATS,
                        help="output format (default: from -o's suffix, else json)")
    parser.add_argument("-o", "--output", metavar="PATH",
                        help="where to write (default: stdout for json and dot)")


def run(args: argparse.Namespace) -> int:
    """Trace the program and write the graph; exit status 2 for bad input."""
    from explorer.cli import UserInputError

    fmt = args.format or _format_from_suffix(args.output) or "json"
    if fmt in ("svg", "png") and not args.output:
        raise UserInputError(f"--format {fmt} needs -o PATH")
    program = load_program(args)
    with program_errors(args):
        tr = trace_program(program)
    if fmt == "json":
        text = json.dumps(json_safe(tr.to_json()), indent=1, allow_nan=False)
    elif fmt == "dot":
        text = to_dot(tr)
    else:
        _render(tr, args.output, fmt)
        print(f"wrote {args.output}")
        return 0
    if args.output:
        if not Path(args.output).parent.is_dir():  # a typo in the folder is an error, not a new folder
            raise UserInputError(f"cannot write {args.output}: no such folder")
        try:
            files.write_atomic(args.output, text + "\n")
        except files.FileProblem as exc:
            raise UserInputError(f"cannot write {args.output}: {str(exc).split(': ', 1)[-1]}") from None
        print(f"wrote {args.output}")
    else:
        sys.stdout.write(text + "\n")
    return 0


def trace_program(program):
    """Trace a program (its last iteration: the graph its last backward pass ran through); errors come
    back as ExprError."""
    from explorer.core.autograd import trace as tracing
    from explorer.core.lang.program import ExprError

    run = program.run()
    if program.param_names and not run.passes:
        # the tracer's own message would not say where: check the output first, with its line:col
        run.require_scalar()
    try:
        return tracing.trace_program(program).last
    except tracing.TraceError as exc:
        raise ExprError(str(exc)) from None


def _format_from_suffix(path: str | None) -> str | None:
    if not path:
        return None
    suffix = Path(path).suffix.lower().lstrip(".")
    return suffix if suffix in FORMATS else None


def _render(tr, path: str, fmt: str) -> None:
    from explorer.cli import UserInputError

    try:
        import PySide6.QtGui  # noqa: F401  (a dependency, not one of our modules)
    except ImportError as exc:
        raise UserInputError(f"--format {fmt} needs Qt (PySide6) to draw, which failed to load: {exc}; "
                             "use --format json or dot") from None
    from explorer.ui.graph.render import render_trace_file

    target = Path(path)
    try:
        # Qt's SVG writer only warns (and draws nothing) when it cannot open the file: check first
        target.open("wb").close()
    except OSError as exc:
        raise UserInputError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        render_trace_file(tr, path, fmt)
    except OSError as exc:
        target.unlink(missing_ok=True)
        raise UserInputError(f"cannot write {path}: {exc.strerror or exc}") from None
    if target.stat().st_size == 0:
        target.unlink(missing_ok=True)
        raise UserInputError(f"cannot write {path}: nothing was drawn")


# ------------------------------------------------------------------------------------------ dot


def _short(snap) -> str:
    if snap is None:
        return "–"
    if snap.numel == 1 and snap.data is not None:
        return fmt_significant(float(snap.item()))
    return f"{snap.dtype} {tuple(snap.shape)}"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


_STYLE = {
    "param": 'shape=box, style="rounded,filled", fillcolor="#dbeafe"',
    "leaf": 'shape=box, style="rounded,filled", fillcolor="#f3f4f6"',
    "const": 'shape=box, style="rounded,filled", fillcolor="#f3f4f6"',
    "op": 'shape=ellipse, style=filled, fillcolor="#fef3c7"',
}


def to_dot(tr) -> str:
    """Graphviz text for a trace: one node per value with its label, value and gradient, edges in data
    flow direction, forward and backward step numbers in the tooltip."""
    back = {nid: i + 1 for i, nid in enumerate(tr.backward_order)}
    lines = ["digraph autograd {", "  rankdir=LR;", '  node [fontname="Helvetica", fontsize=11];']
    for step, nid in enumerate(tr.forward_order, start=1):
        node = tr.nodes[nid]
        title = node.label if node.name is None or node.op is None else f"{node.name} = {node.op}"
        text = f"{title}\nvalue {_short(node.value)}\ngrad {_short(node.grad)}"
        tip = f"forward step {step}" + (f", backward step {back[nid]}" if nid in back else "")
        style = _STYLE.get(node.kind, _STYLE["leaf"])
        if node.is_output:
            style += ", penwidth=2"
        lines.append(f"  {nid} [label={_quote(text)}, tooltip={_quote(tip)}, {style}];")
    for u, v, data in tr.graph.edges(data=True):
        lines.append(f"  {u} -> {v} [tooltip={_quote('input ' + str(data.get('arg', 0)))}];")
    lines.append("}")
    return "\n".join(lines)
