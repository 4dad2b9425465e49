"""An expression program as the PyTorch script a person would write: module level, the user's names.

A program already written in PyTorch exports as itself: its imports, lines, comments, `backward()` and
prints. A program in the app's first language (`w = param(2.2)`, `a = sigmoid(z)`, `L = bce(a, y)`) is
translated line by line into torch (`w = torch.tensor(2.2, requires_grad=True)`, `torch.sigmoid(z)`,
`F.binary_cross_entropy(...)`), each op from its `torch_code` template in the op table
(`explorer.core.lang.ops`), so the table stays the one place that knows how an op reads as torch. Values set
in the app (the leaves' sliders) come along. The script then prints the output and every leaf's `.grad`
(the numbers the app shows) and, for a program that is one forward and one backward pass, checks them with
`torch.autograd.gradcheck` in float64.
"""

from __future__ import annotations

import ast
import keyword
import re

from explorer.core.export.notebook import Document, Section, to_script
from explorer.core.lang import legacy
from explorer.core.lang.ops import DTYPES, OPS
from explorer.core.lang.program import Program, parse

# Each printed line of a run reads `<label> = <value as a Python literal>`; the labels start with these.
OUTPUT_PREFIX = "output "
GRAD_PREFIX = "grad "

# losses whose target the first language converts to the prediction's dtype and shape
_FLOAT_TARGET_LOSSES = ("bce", "bce_with_logits", "mse")

# names the script itself uses at module level; a program's own name equal to one renames ours
_OURS = ("torch", "F", "builtins", "dropout")


def expression_document(source: str, overrides: dict | None = None, title: str | None = None) -> Document:
    """The program `source` (with the leaves' values `overrides`, as the app holds them) as a Document."""
    program = parse(source)
    return _Writer(program, dict(overrides or {}), title).document()


def export_expression(source: str, overrides: dict | None = None, title: str | None = None) -> str:
    """The program `source` as a Python script."""
    return to_script(expression_document(source, overrides, title))


def fill_template(template: str, fields: dict[str, str | None]) -> str:
    """An op's `torch_code` with its arguments' code: `⟦…⟧` parts vanish when their argument is None."""

    def optional(match: re.Match) -> str:
        inside = match.group(1)
        return "" if any(fields.get(k) is None for k in re.findall(r"\{(\w+)\}", inside)) else inside

    text = re.sub(r"⟦([^⟧]*)⟧", optional, template)
    return text.format(**{k: "None" if v is None else v for k, v in fields.items()})


class _Writer:
    """Writes one program; `names` maps each module-level name the script needs to the one it can use."""

    def __init__(self, program: Program, overrides: dict, title: str | None):
        self.program = program
        self.run = program.run()
        self.overrides = {k: v for k, v in overrides.items() if k in self.run.params}  # stale names go
        self.title = title or _title(program.source)
        self.formula = legacy.is_formula(program.tree)
        assigned = {
            n.id for n in ast.walk(program.tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
        }
        self.names: dict[str, str] = {}
        for name in _OURS:
            alias = name
            while alias in assigned or keyword.iskeyword(alias):
                alias += "_"
            self.names[name] = alias
        self.lines = program.source.splitlines()
        self.offsets = _line_offsets(program.source)
        self.uses_dropout = False
        self.micrograd = any(
            isinstance(n, ast.ImportFrom) and (n.module or "").startswith("micrograd")
            for n in program.tree.body
        )

    # -- the script ---------------------------------------------------------------------------------

    def document(self) -> Document:
        """Imports, the program, the printout, the gradcheck."""
        doc = Document(
            f"{self.title}: exported from Autograd Explorer",
            "The program of the Expression workspace as plain PyTorch. Run it with `python <this file>`: it "
            "runs the program, prints the output and the gradient in every leaf's `.grad` (the numbers the "
            "app shows), then checks them with torch.autograd.gradcheck in float64.",
        )
        body = self._body()
        doc.sections.append(
            Section(
                "Imports",
                "torch alone; `F` holds the functional forms of the losses.",
                "\n".join(self._imports()),
            )
        )
        if self.micrograd:
            doc.sections.append(
                Section(
                    "micrograd",
                    "The program imports micrograd. Its Value, Neuron, Layer and MLP are defined here "
                    "as the app runs them: each value a float64 torch scalar, `label=`, `.tanh()` and "
                    "`.exp()` "
                    "as in the micrograd lecture.",
                    _micrograd_source(),
                )
            )
        doc.sections.append(
            Section(
                "The program",
                "The program's own lines; the app starts torch's random "
                "numbers from seed 0, and so does this script.",
                "\n".join(body),
            )
        )
        doc.sections += self._report()
        return doc

    def _imports(self) -> list[str]:
        n = self.names
        lines = []
        if n["torch"] != "torch" or n["F"] != "F":
            lines.append(
                "# The program has its own variables named "
                + " and ".join(f"`{k}`" for k in ("torch", "F") if n[k] != k)
                + ", so the imports go by other names."
            )
        lines.append(
            "import builtins" if n["builtins"] == "builtins" else f"import builtins as {n['builtins']}"
        )
        lines.append("import torch" if n["torch"] == "torch" else f"import torch as {n['torch']}")
        lines.append(f"import torch.nn.functional as {n['F']}")
        lines.append(f"{n['torch']}.manual_seed(0)  # the app runs every program from seed 0")
        return lines

    def _body(self) -> list[str]:
        out: list[str] = []
        if self.uses_dropout_anywhere():
            out += self._dropout_helper()
        previous = 0
        statements = self.program.tree.body
        leaves = self._leaf_statements()
        for stmt in statements:
            start, end = stmt.lineno, stmt.end_lineno or stmt.lineno
            for line in self.lines[previous : start - 1]:  # comments and blank lines between statements
                if not _is_header(line):
                    out.append(line)
            if (
                self.micrograd
                and isinstance(stmt, ast.ImportFrom)
                and (stmt.module or "").startswith("micrograd")
            ):
                names = ", ".join(a.name for a in stmt.names)
                out.append(f"# from {stmt.module} import {names}: defined above, as the app runs them")
                previous = stmt.end_lineno or stmt.lineno
                continue
            text = self._statement(stmt)
            trailing = self.lines[end - 1][_char_col(self.lines[end - 1], stmt.end_col_offset or 0) :]
            out.append(text + trailing)
            for name in leaves.get(id(stmt), ()):
                if name in self.overrides and not self.formula:
                    t = self.names["torch"]
                    out.append(f"with {t}.no_grad():  # the value set in the app")
                    out.append(f"    {name}.copy_({t}.as_tensor({self.overrides[name]!r}))")
            previous = end
        while out and not out[-1].strip():
            out.pop()
        return out

    def _leaf_statements(self) -> dict[int, list[str]]:
        """id(top-level statement) -> the named leaves it creates (the first assignment of each name)."""
        out: dict[int, list[str]] = {}
        seen: set[str] = set()
        for stmt in self.program.tree.body:
            if isinstance(stmt, ast.Assign):
                for target in stmt.targets:
                    if (
                        isinstance(target, ast.Name)
                        and target.id in self.run.params
                        and target.id not in seen
                    ):
                        seen.add(target.id)
                        out.setdefault(id(stmt), []).append(target.id)
        return out

    def _report(self) -> list[Section]:
        run = self.run
        out = run.output_name
        b, t = self.names["builtins"], self.names["torch"]
        target = out if out.isidentifier() and out in run.env else None
        lines = []
        if target is None:
            return [Section("Output", "", f'{b}.print("{OUTPUT_PREFIX}output = (see above)")')]
        if run.params and not run.passes and run.output.requires_grad:
            lines.append(f"{target}.backward()  # autograd fills every leaf's .grad")
        value = ".data" if self._is_value(out) else ".tolist()"
        lines.append(f'{b}.print("{OUTPUT_PREFIX}{out} =", {target}{value})')
        grad = "dL/d" if out == "L" else f"d{out}/d"
        for name in run.params:
            code = _leaf_code(name)
            if code is None:
                continue
            if self._is_value(name):  # a micrograd Value: its .grad is a float
                lines.append(f'{b}.print("{GRAD_PREFIX}{grad}{name} =", {code}.grad)')
                continue
            lines.append(
                f'{b}.print("{GRAD_PREFIX}{grad}{name} =", '
                f"({code}.grad if {code}.grad is not None else {t}.zeros_like({code})).tolist())"
            )
        sections = [
            Section(
                "The numbers the app shows",
                "The output, then dL/d(leaf) in each leaf's `.grad`.",
                "\n".join(lines),
            )
        ]
        check = self._gradcheck()
        if check:
            sections.append(
                Section(
                    "gradcheck",
                    "torch.autograd.gradcheck nudges each element of each leaf by a small eps in float64 and "
                    "compares how the output moves with autograd's gradient: True means they agree.",
                    check,
                )
            )
        return sections

    def _gradcheck(self) -> str:
        """A float64 gradcheck of the output against each named leaf, for one forward and one backward."""
        from explorer.core.autograd.gradcheck import finite_differences_apply

        run = self.run
        b, t = self.names["builtins"], self.names["torch"]
        plain = [n for n in run.params if n.isidentifier()]
        why = finite_differences_apply(run) if run.passes else None
        simple = all(
            isinstance(s, ast.Assign | ast.Expr | ast.Import | ast.ImportFrom | ast.AugAssign)
            for s in self.program.tree.body
        )
        if self.micrograd:
            why = "micrograd's values are checked against finite differences in the app"
        if not plain or why is not None or not simple or run.output_name not in run.env:
            reason = why or ("the leaves are module parameters" if not plain
                             else "the program is more than one forward and backward pass")
            return f'{b}.print("gradcheck: skipped ({reason})")' if run.params else ""
        leaves = self._leaf_statements()
        body = []
        for stmt in self.program.tree.body:
            if id(stmt) in leaves or isinstance(stmt, ast.Import | ast.ImportFrom) or _is_report(stmt):
                continue
            body.append("    " + self._statement(stmt).replace("\n", "\n    "))
        args = ", ".join(plain)
        lines = [
            f"def output_of({args}):",
            "    # the program again, as a function of its leaves (what gradcheck differentiates)",
            f"    {t}.manual_seed(0)",
            *body,
            f"    return {run.output_name}",
            "",
            f"default_dtype = {t}.get_default_dtype()",
            f"{t}.set_default_dtype({t}.float64)  # gradcheck's finite differences need float64",
            f"start = [{t}.as_tensor(v.detach(), dtype={t}.float64).requires_grad_() for v in ({args},)]",
            "for k, name in enumerate([" + ", ".join(repr(n) for n in plain) + "]):",
            "    def only_k(x, k=k):",
            "        return output_of(*[x if i == k else v.detach() for i, v in enumerate(start)])",
            f"    ok = {t}.autograd.gradcheck(only_k, (start[k],), eps=1e-6, atol=1e-4,",
            "                               raise_exception=False)",
            f'    {b}.print(f"gradcheck of {{name}}: {{ok}}")',
            f"{t}.set_default_dtype(default_dtype)",
        ]
        return "\n".join(lines)

    # -- one statement ------------------------------------------------------------------------------

    def _is_value(self, name: str) -> bool:
        """Whether the leaf or output `name` is a micrograd Value (its root variable is not torch's)."""
        import torch

        root = re.split(r"[.\[]", name, maxsplit=1)[0]
        return self.micrograd and not isinstance(self.run.env.get(root), torch.Tensor | torch.nn.Module)

    def _statement(self, stmt: ast.stmt) -> str:
        """The statement's source, with the first language's calls (and list literals) as torch code."""
        return self._code(stmt, top=True)

    def _code(self, node: ast.AST, top: bool = False) -> str:
        """Source of `node` with its translated parts replaced (outermost first, recursively)."""
        if not top and self._is_legacy(node):
            return self._translate(node)
        start, end = self._span(node)
        text = self.program.source[start:end]
        parts = []
        for child in self._outermost(node):
            c_start, c_end = self._span(child)
            code = self._translate(child)
            if not _is_atom(code) and not _alone(self.program.source, c_start, c_end):
                code = f"({code})"
            parts.append((c_start - start, c_end - start, code))
        for a, z, code in sorted(parts, reverse=True):
            text = text[:a] + code + text[z:]
        return text

    def _outermost(self, node: ast.AST) -> list[ast.AST]:
        found = []
        stack = list(ast.iter_child_nodes(node))
        while stack:
            child = stack.pop()
            if self._is_legacy(child):
                found.append(child)
            else:
                stack.extend(ast.iter_child_nodes(child))
        return found

    def _is_legacy(self, node: ast.AST) -> bool:
        if isinstance(node, ast.List) and self.formula:
            return True
        if (
            isinstance(node, ast.Name)
            and node.id in DTYPES
            and isinstance(node.ctx, ast.Load)
            and self.formula
        ):
            return True
        return (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in OPS
            and self._is_legacy_name(node)
        )

    def _is_legacy_name(self, node: ast.Call) -> bool:
        name = node.func.id
        if name in self.run.env and not self.formula:
            return False  # the program's own variable or def of that name
        if name in legacy.SHARED_WITH_PYTHON:
            return self.formula and len(node.args) >= 1 and not node.keywords
        return OPS[name].kind != "operator"

    def _translate(self, node: ast.AST) -> str:
        t, f = self.names["torch"], self.names["F"]
        if isinstance(node, ast.List):
            return f"{t}.tensor({self._literal(node)})"
        if isinstance(node, ast.Name):
            return f"{t}.{node.id}"
        name = node.func.id
        spec = OPS[name]
        if name == "param":
            value = node.args[0] if node.args else node.keywords[0].value
            target = self._target_of(node)
            if target in self.overrides:
                return f"{t}.tensor({self.overrides[target]!r}, requires_grad=True)  # set in the app"
            if isinstance(value, ast.Constant) and isinstance(value.value, float):
                return f"{t}.tensor({self._code(value)}, requires_grad=True)"
            if isinstance(value, ast.List | ast.Constant | ast.UnaryOp):
                return f"{t}.tensor({self._literal(value)}, dtype={t}.float32, requires_grad=True)"
            code = self._code(value)
            code = code if _is_atom(code) else f"({code})"
            whole = any(
                isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in ("arange",)
                for n in ast.walk(value)
            )
            return f"{code}.float().requires_grad_()" if whole else f"{code}.requires_grad_()"
        if name == "seed":
            return f"{t}.manual_seed({self._code(node.args[0])})"
        bound = _bind(spec, node)
        fields: dict[str, str | None] = {}
        for arg in spec.args:
            value = bound.get(arg.name)
            if arg.variadic:
                fields[arg.name] = ", ".join(self._code(v) for v in value or [])
            elif value is None:
                fields[arg.name] = None if arg.default is None else repr(arg.default)
            elif arg.kind == "tensor":
                code = self._code(value)
                if isinstance(value, ast.Constant | ast.UnaryOp) and not isinstance(value, ast.List):
                    code = f"{t}.tensor({code})"  # the first language made a tensor of a number here
                # an argument alone between the call's brackets and commas needs no brackets of its own
                alone = re.search(r"[(,]\s*\{" + arg.name + r"\}\s*[,)]", spec.torch_code)
                fields[arg.name] = code if alone or _is_atom(code) else f"({code})"
            elif arg.kind == "dtype":
                fields[arg.name] = self._code(value) if not isinstance(value, ast.Name) else f"{t}.{value.id}"
            else:
                fields[arg.name] = self._code(value)
        if name in _FLOAT_TARGET_LOSSES:
            first, second = spec.args[0].name, spec.args[1].name
            target_node = bound.get(second)
            if self._is_number(target_node):
                fields[second] = f"{t}.full_like({fields[first]}, {self._code(target_node)})"
            elif isinstance(target_node, ast.List):
                fields[second] = (
                    f"{t}.as_tensor({self._literal(target_node)}, dtype={fields[first]}.dtype)"
                    f".expand_as({fields[first]})"
                )
        if name in ("cross_entropy", "nll") and isinstance(bound.get(spec.args[1].name), ast.List):
            fields[spec.args[1].name] = f"{t}.tensor({self._literal(bound[spec.args[1].name])})"
        if name == "dropout":
            self.uses_dropout = True
            return f"{self.names['dropout']}({fields['x']}, {fields['p'] or 0.5})"
        code = fill_template(spec.torch_code, fields)
        code = re.sub(r"\btorch\.", f"{t}.", code)
        return re.sub(r"(?<![\w.])F\.", f"{f}.", code)

    def _is_number(self, node) -> bool:
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return True
        if isinstance(node, ast.UnaryOp) and isinstance(node.operand, ast.Constant):
            return True
        return isinstance(node, ast.Name) and isinstance(self.run.env.get(node.id), int | float)

    def _literal(self, node: ast.AST) -> str:
        start, end = self._span(node)
        return self.program.source[start:end]

    def _target_of(self, call: ast.Call) -> str | None:
        for stmt in self.program.tree.body:
            if isinstance(stmt, ast.Assign) and stmt.value is call and isinstance(stmt.targets[0], ast.Name):
                return stmt.targets[0].id
        return None

    def _span(self, node: ast.AST) -> tuple[int, int]:
        start = self.offsets[node.lineno - 1] + _char_col(self.lines[node.lineno - 1], node.col_offset)
        end_line = node.end_lineno or node.lineno
        end = self.offsets[end_line - 1] + _char_col(self.lines[end_line - 1], node.end_col_offset or 0)
        return start, end

    def uses_dropout_anywhere(self) -> bool:
        """Whether the first language's dropout(...) appears (the script needs its helper)."""
        return self.formula and any(
            isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "dropout"
            for n in ast.walk(self.program.tree)
        )

    def _dropout_helper(self) -> list[str]:
        t = self.names["torch"]
        call = fill_template(OPS["dropout"].torch_code, {"x": "x", "p": "p"}).replace(
            "F.", f"{self.names['F']}.", 1
        )
        return [
            f"def {self.names['dropout']}(x, p):",
            "    # the app draws each dropout mask from the program's own random numbers: one draw seeds",
            "    # the mask, and the stream the following lines see is left as it was",
            f"    seed = int({t}.randint(0, 2**62, (1,)))",
            f"    with {t}.random.fork_rng(devices=[]):",
            f"        {t}.manual_seed(seed)",
            f"        return {call}",
            "",
        ]


def _micrograd_source() -> str:
    """The app's micrograd module as script text (our own code: Value, Neuron, Layer, MLP, draw_dot)."""
    from pathlib import Path

    from explorer.core.lang import micrograd

    text = Path(micrograd.__file__).read_text(encoding="utf-8")
    text = text.replace("from __future__ import annotations\n", "")
    return text.replace("-> Value:", '-> "Value":').strip()


def _bind(spec, node: ast.Call) -> dict:
    """The call's argument nodes by the op table's argument names."""
    rest = list(node.args)
    keywords = {kw.arg: kw.value for kw in node.keywords}
    bound: dict = {}
    for arg in spec.args:
        if arg.variadic:
            bound[arg.name] = (
                list(rest[0].elts) if len(rest) == 1 and isinstance(rest[0], ast.Tuple) else rest
            )
            rest = []
        elif rest:
            bound[arg.name] = rest.pop(0)
        else:
            bound[arg.name] = keywords.get(arg.name)
    return bound


def _leaf_code(name: str) -> str | None:
    """How the script reaches a leaf the app names: `w`, `model.fc1.weight`, `params[0]`."""
    if re.fullmatch(r"[^\W\d]\w*((\.[^\W\d]\w*)|(\[\d+\]))*", name):
        return name
    return None


def _is_report(stmt: ast.stmt) -> bool:
    """A line that only shows or differentiates (print, backward, .grad): not part of the gradcheck's
    function."""
    text = ast.dump(stmt)
    return (
        isinstance(stmt, ast.Expr)
        and ("backward" in text or "'print'" in text)
        or "attr='grad'" in text
        or "id='grad'" in text
    )


def _is_atom(code: str) -> bool:
    """True when `code` needs no brackets next to an operator (a name, a call, a literal)."""
    try:
        node = ast.parse(code, mode="eval").body
    except SyntaxError:
        return False
    return isinstance(
        node, ast.Name | ast.Call | ast.Attribute | ast.Subscript | ast.List | ast.Constant | ast.Tuple
    ) and not (isinstance(node, ast.Constant) and str(node.value).startswith("-"))


def _alone(source: str, start: int, end: int) -> bool:
    """True when the text at [start, end) stands alone: the whole right-hand side, or an argument."""
    before = source[:start].rstrip()
    after = source[end:].lstrip()
    return (before.endswith(("=", "(", ",")) or not before or before.endswith("\n")) and (
        not after or after[0] in ",)\n#" or after.startswith(("\n",))
    )


def _line_offsets(source: str) -> list[int]:
    offsets = [0]
    for line in source.splitlines(keepends=True):
        offsets.append(offsets[-1] + len(line))
    return offsets


def _char_col(line: str, byte_col: int) -> int:
    return len(line.encode("utf-8")[:byte_col].decode("utf-8", errors="replace"))


def _is_header(line: str) -> bool:
    return bool(re.match(r"\s*#\s*(title|lr)\s*:", line, re.IGNORECASE))


def _title(source: str) -> str:
    from explorer.core.lang.examples import example_title

    return example_title(source, "Expression").replace('"""', "'''")


__all__ = ["GRAD_PREFIX", "OUTPUT_PREFIX", "export_expression", "expression_document", "fill_template"]
