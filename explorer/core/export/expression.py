"""An expression program as a plain PyTorch script: the same tensors, the same statements, the same numbers.

Each op is written from its `torch_code` template in the op table (`explorer.core.lang.ops`), so the table
stays the one place that knows how an op reads as torch. The script defines `program(dtype, values)`,
which runs the user's lines with the user's names, then calls `backward()`, prints the output and every
param's `.grad`, and checks them against float64 central differences.
"""

from __future__ import annotations

import ast
import keyword
import math
import re

from explorer.core.export.notebook import Document, Section, to_script
from explorer.core.lang.ops import ATTRIBUTES, DTYPES, METHODS, OPS
from explorer.core.lang.program import Program, parse
from explorer.core.lang.syntax import _BINOPS

# Each printed line of a run reads `<label> = <value as a Python literal>`; the labels start with these.
OUTPUT_PREFIX = "output "
GRAD_PREFIX = "grad "

# precedence levels of the code we write, so brackets appear only where Python needs them
_SUM, _PRODUCT, _UNARY, _POWER, _ATOM = 1, 2, 3, 4, 5
_LEVEL = {"add": _SUM, "sub": _SUM, "mul": _PRODUCT, "div": _PRODUCT, "matmul": _PRODUCT, "pow": _POWER}
_SYMBOL = {"add": "+", "sub": "-", "mul": "*", "div": "/", "matmul": "@", "pow": "**"}

# names the script itself uses inside `program`; a user's name equal to one of them renames ours
_OURS = ("torch", "F", "dtype", "values", "leaf", "initial", "dropout", "START_VALUES")

# losses whose target the language converts to the prediction's dtype and shape
_FLOAT_TARGET_LOSSES = ("bce", "bce_with_logits", "mse")


def expression_document(source: str, overrides: dict | None = None, title: str | None = None) -> Document:
    """The program `source` (with the params' values `overrides`, as the app holds them) as a Document."""
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


def _number(value) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return f'float("{value}")'
    return repr(value)


class _Code:
    """A piece of generated code and its precedence."""

    def __init__(self, text: str, level: int = _ATOM, number: bool = False):
        self.text, self.level, self.number = text, level, number

    def at(self, level: int) -> str:
        return self.text if self.level >= level else f"({self.text})"


class _Writer:
    """Writes one program; `names` maps each identifier the script needs to the one it can use."""

    def __init__(self, program: Program, overrides: dict, title: str | None):
        self.program = program
        self.overrides = {k: v for k, v in overrides.items() if k in program.param_names}  # stale names go
        self.title = title or _title(program.source)
        self.user_names = {s.name for s in program.statements}
        taken = set(self.user_names)
        self.names: dict[str, str] = {}
        for name in _OURS:
            alias = name
            while alias in taken or keyword.iskeyword(alias):
                alias += "_"
            taken.add(alias)
            self.names[name] = alias
        self.renamed = [n for n in _OURS if self.names[n] != n]
        self.uses_dropout = False
        self._values = None  # values of subexpressions, computed on demand by the language's own runner

    # -- the script ---------------------------------------------------------------------------------

    def document(self) -> Document:
        """The script as a Document: imports, the program, backward and its printout, the check."""
        n = self.names
        body = self._body()
        has_params = bool(self.program.param_names)
        doc = Document(
            f"{self.title}: exported from Autograd Explorer",
            "The program of the Expression workspace as plain PyTorch. Run it with `python <this file>`: it "
            "runs the program's lines as torch calls, calls `backward()` and prints the output and the "
            "gradient in every param's `.grad` (the numbers the app shows), then checks them with finite "
            "differences in float64.",
        )
        imports = []
        if n["torch"] != "torch" or n["F"] != "F":
            imports.append("# The program has its own variables named " + " and ".join(
                f"`{k}`" for k in ("torch", "F") if n[k] != k) + ", so the imports go by other names.")
        imports.append("import torch" if n["torch"] == "torch" else f"import torch as {n['torch']}")
        imports.append(f"import torch.nn.functional as {n['F']}")
        doc.sections.append(Section("Imports", "torch alone; `F` holds the functional forms of the losses.",
                                    "\n".join(imports)))

        lines = []
        others = [k for k in self.renamed if k not in ("torch", "F")]
        if others:
            lines.append("# The program uses the names " + ", ".join(f"`{k}`" for k in others)
                         + " itself, so the script's own helpers carry a trailing underscore.")
        lines.append("# The params' values set in the app (they replace the program's starting values).")
        lines.append(f"{n['START_VALUES']} = {_literal_dict(self.overrides)}")
        lines += ["", ""]
        if self.uses_dropout:
            lines += self._dropout_helper() + ["", ""]
        lines += [
            f"def program({n['dtype']}=None, {n['values']}=None):",
            '    """The program\'s lines in order; returns the output and {name: param}.',
            "",
            f"    `{n['dtype']}`: None keeps torch's own dtypes (float32 from numbers with a decimal point,",
            f"    int64 from whole numbers); {n['torch']}.float64 converts every floating-point value, as",
            f"    the finite-difference check needs. `{n['values']}`: params' starting values by name.",
            '    """',
            f"    {n['values']} = {n['START_VALUES']} if {n['values']} is None else {n['values']}",
            "",
            f"    def {n['leaf']}(t):",
            "        # a value the program makes, at the precision of this run",
            f"        return t.to({n['dtype']}) if {n['dtype']} is not None and t.is_floating_point() else t",
            "",
        ]
        if has_params:
            t, d, v = n["torch"], n["dtype"], n["values"]
            lines += [
                f"    def {n['initial']}(name, value):",
                "        # a param's starting value: the program's own or the one given by name, as a",
                "        # floating-point tensor (only those can require grad), detached from any graph",
                f"        value = {n['leaf']}({t}.as_tensor(value))",
                f"        if name in {v}:",
                f"            floating = value.dtype if value.is_floating_point() else {d}",
                f"            value = {t}.as_tensor({v}[name], dtype=floating)",
                "        if not value.is_floating_point():",
                f"            value = value.to({d} or {t}.float32)",
                "        return value.detach()",
                "",
            ]
        steps = self.program._steps
        if steps[0].kind != "seed" and any(s.kind == "seed" or self._uses_rng(s.value) for s in steps):
            lines.append(f"    {n['torch']}.manual_seed(0)  # the app starts its random numbers from seed 0")
        lines += ["    " + line if line else "" for line in body]
        params = ", ".join(f'"{p}": {p}' for p in self.program.param_names)
        lines.append(f"    return {self.program.output_name}, {{{params}}}")
        doc.sections.append(Section(
            "The program",
            "Each line of the program is one line of torch, with the same names. `param(...)` makes a leaf "
            "tensor with `requires_grad=True`: `backward()` fills its `.grad`. The function can run again "
            "in float64 from other starting values, which the finite-difference check needs.",
            "\n".join(lines)))
        doc.sections += self._main(has_params)
        return doc

    def _main(self, has_params: bool) -> list[Section]:
        out = self.program.output_name
        t = self.names["torch"]  # at module level `torch` is the import's name
        if not has_params:
            return [Section(
                "Forward",
                "There is no `param(...)` in the program: nothing to differentiate, the output is the whole "
                "story.",
                f'output, params = program()\nprint("{OUTPUT_PREFIX}{out} =", output.tolist())')]
        grad = "dL/d" if out == "L" else f"d{out}/d"
        backward = "\n".join([
            "output, params = program()",
            "if output.requires_grad:  # a conversion to int64 can cut the graph: then every gradient is 0",
            "    output.backward()",
            f'print("{OUTPUT_PREFIX}{out} =", output.tolist())',
            "grads = {}",
            "for name, p in params.items():",
            f"    grads[name] = p.grad if p.grad is not None else {t}.zeros_like(p)  # an unused param",
            f'    print(f"{GRAD_PREFIX}{grad}{{name}} =", grads[name].tolist())',
        ])
        check = "\n".join([
            "eps = 1e-6",
            f"with {t}.no_grad():",
            f"    start = {{name: p.detach().clone() for name, p in program({t}.float64)[1].items()}}",
            "    for name, value in start.items():",
            f"        if value.numel() > {_fd_limit()}:",
            '            print(f"finite differences of {name}: skipped ({value.numel():,} elements)")',
            "            continue",
            f"        numeric = {t}.zeros_like(value)",
            "        flat = value.view(-1)",
            "        for i in range(flat.numel()):",
            "            original = flat[i].item()",
            "            flat[i] = original + eps",
            f"            plus = program({t}.float64, start)[0].item()",
            "            flat[i] = original - eps",
            f"            minus = program({t}.float64, start)[0].item()",
            "            flat[i] = original",
            "            numeric.view(-1)[i] = (plus - minus) / (2 * eps)",
            f"        gap = (grads[name].to({t}.float64) - numeric).abs()",
            "        gap = gap.max().item() if gap.numel() else 0.0",
            '        print(f"finite differences of {name}: largest |autograd - numeric| = {gap:.2e}")',
        ])
        return [
            Section("Forward and backward",
                    "Run the program, then `backward()`: autograd walks the graph from the output back to "
                    "the params and leaves dL/dparam in each `.grad`.", backward),
            Section("Finite differences",
                    "Nudge one element of one param by ±eps, rerun the whole program in float64 and see "
                    "how the output moves: (f(p + eps) − f(p − eps)) / 2eps should match autograd.", check),
        ]

    def _dropout_helper(self) -> list[str]:
        t, f = self.names["torch"], self.names["F"]
        call = fill_template(OPS["dropout"].torch_code, {"x": "x", "p": "p"}).replace("F.", f"{f}.", 1)
        return [
            f"def {self.names['dropout']}(x, p):",
            "    # the app draws each dropout mask from the program's own random numbers: one draw seeds",
            "    # the mask, and the stream the following lines see is left as it was",
            f"    seed = int({t}.randint(0, 2**62, (1,)))",
            f"    with {t}.random.fork_rng(devices=[]):",
            f"        {t}.manual_seed(seed)",
            f"        return {call}",
        ]

    # -- the statements -----------------------------------------------------------------------------

    def _body(self) -> list[str]:
        lines: list[str] = []
        source_lines = self.program.source.splitlines()
        previous_end = 0
        for step in self.program._steps:
            comments = [ln.strip() for ln in source_lines[previous_end:step.line - 1]
                        if ln.strip().startswith("#") and not _is_header(ln)]
            previous_end = step.line
            lines += comments
            if step.kind == "seed":
                lines.append(self._fill(OPS["seed"].torch_code, {"n": self._int_arg(step.value)}))
                continue
            if step.is_param:
                # a plain number or list goes to torch.as_tensor as it is
                raw = isinstance(step.value, ast.List) or self._plain(step.value).number
                value = self._list(step.value) if isinstance(step.value, ast.List) else (
                    self._plain(step.value).text if raw else self._expr(step.value, tensor=True).text)
                start = f'{self.names["initial"]}("{step.name}", {value})'
                code = self._fill(OPS["param"].torch_code, {"value": start})
                if step.name == self.program.param_names[0]:
                    lines.append("# a param is a leaf tensor with requires_grad: backward() fills its .grad")
                lines.append(f"{step.name} = {code}")
                continue
            lines.append(f"{step.name} = {self._expr(step.value, tensor=True).text}")
        return lines

    def _fill(self, template: str, fields: dict) -> str:
        """An op table template, with the script's import aliases, filled with the arguments' code."""
        return fill_template(self._torch(template), fields)

    def _torch(self, code: str) -> str:
        """Template text with the import aliases the script uses."""
        code = re.sub(r"\btorch\.", f"{self.names['torch']}.", code)
        return re.sub(r"(?<![\w.])F\.", f"{self.names['F']}.", code)

    def _expr(self, node: ast.expr, tensor: bool = False) -> _Code:
        """The code of `node`; `tensor`: the language makes a tensor of a plain number here."""
        code = self._plain(node)
        if tensor and code.number:
            return self._new_tensor(code.text)
        return code

    def _new_tensor(self, inner: str) -> _Code:
        return _Code(f"{self.names['leaf']}({self.names['torch']}.tensor({inner}))")

    def _plain(self, node: ast.expr) -> _Code:
        if isinstance(node, ast.Constant):
            negative = isinstance(node.value, int | float) and node.value < 0
            return _Code(_number(node.value), _UNARY if negative else _ATOM, number=True)
        if isinstance(node, ast.Name):
            if node.id in DTYPES:
                return _Code(f"{self.names['torch']}.{node.id}")
            return _Code(node.id)
        if isinstance(node, ast.List):
            return self._new_tensor(self._list(node))
        if isinstance(node, ast.Tuple):
            return _Code("(" + ", ".join(self._expr(e).text for e in node.elts) + ("," if len(node.elts) == 1
                                                                                    else "") + ")")
        if isinstance(node, ast.UnaryOp):
            operand = self._plain(node.operand)
            if isinstance(node.op, ast.UAdd):
                return operand
            if operand.number:
                return _Code(f"-{operand.at(_UNARY)}", _UNARY, number=True)
            return _Code(self._fill(OPS["neg"].torch_code, {"a": operand.at(_UNARY)}), _UNARY)
        if isinstance(node, ast.BinOp):
            return self._binop(node)
        if isinstance(node, ast.Attribute):
            spec = OPS[ATTRIBUTES[node.attr]]
            receiver = self._expr(node.value, tensor=True)
            return _Code(self._fill(spec.torch_code, {"x": receiver.at(_ATOM)}))
        if isinstance(node, ast.Call):
            return self._call(node)
        raise ValueError(f"cannot export {type(node).__name__}")  # the language's checks let none through

    def _list(self, node: ast.List) -> str:
        return "[" + ", ".join(self._list(e) if isinstance(e, ast.List) else self._plain(e).text
                               for e in node.elts) + "]"

    def _binop(self, node: ast.BinOp) -> _Code:
        name = _BINOPS[type(node.op)]
        left, right = self._plain(node.left), self._plain(node.right)
        level = _LEVEL[name]
        if name == "pow":
            left_text, right_text = left.at(_POWER + 1), right.at(_UNARY)
        else:
            left_text, right_text = left.at(level), right.at(level + 1)
        if name == "matmul":  # `@` never folds numbers: the language makes them tensors
            if left.number:
                left_text = self._new_tensor(left.text).text
            if right.number:
                right_text = self._new_tensor(right.text).text
        text = self._fill(OPS[name].torch_code, {"a": left_text, "b": right_text})
        return _Code(text, level, number=left.number and right.number and name != "matmul")

    def _call(self, node: ast.Call) -> _Code:
        func = node.func
        if isinstance(func, ast.Attribute):
            spec = OPS[METHODS[func.attr]]
            positional = [func.value, *node.args]
        else:
            spec = OPS[func.id]
            positional = list(node.args)
        keywords = {kw.arg: kw.value for kw in node.keywords}
        bound: dict[str, ast.expr | list | None] = {}
        rest = list(positional)
        for arg in spec.args:
            if arg.variadic:
                bound[arg.name] = rest
                rest = []
            elif rest:
                bound[arg.name] = rest.pop(0)
            else:
                bound[arg.name] = keywords.get(arg.name)
        fields: dict[str, str | None] = {}
        for arg in spec.args:
            node_of = bound[arg.name]
            if arg.variadic:
                fields[arg.name] = self._shape(node_of)
            elif node_of is None:
                fields[arg.name] = None if arg.default is None else _number(arg.default)
            elif arg.kind == "tensor":
                code = self._expr(node_of, tensor=True)
                # an argument alone between the call's brackets and commas needs no brackets of its own
                alone = re.search(r"[(,]\s*\{" + arg.name + r"\}\s*[,)]", spec.torch_code)
                fields[arg.name] = code.text if alone else code.at(_ATOM)
            elif arg.kind == "int":
                fields[arg.name] = self._int_arg(node_of)
            elif arg.kind == "float":
                code = self._plain(node_of)
                fields[arg.name] = code.text if code.number else f"{code.at(_ATOM)}.item()"
            elif arg.kind == "dtype":
                code = self._plain(node_of)
                floating = isinstance(node_of, ast.Name) and DTYPES[node_of.id].is_floating_point
                # a floating dtype follows the run's precision, as the app does in its float64 checks
                fields[arg.name] = f"{self.names['dtype']} or {code.text}" if floating else code.text
        if spec.name in _FLOAT_TARGET_LOSSES:
            fields = self._float_target(spec, bound, fields)
        if spec.name == "dropout":
            self.uses_dropout = True
            return _Code(f"{self.names['dropout']}({fields['x']}, {fields['p']})")
        code = self._fill(spec.torch_code, fields)
        if spec.kind == "constructor" and spec.name not in ("param", "seed"):
            code = f"{self.names['leaf']}({code})"  # made at the run's precision, as the app makes it
        return _Code(code)

    def _int_arg(self, node: ast.expr) -> str:
        code = self._plain(node)
        return code.text if code.number else f"{code.at(_ATOM)}.item()"

    def _shape(self, nodes: list[ast.expr]) -> str:
        if len(nodes) == 1 and isinstance(nodes[0], ast.Tuple | ast.List):
            nodes = nodes[0].elts
        elif len(nodes) == 1 and not self._plain(nodes[0]).number:
            return f"*{self._plain(nodes[0]).at(_ATOM)}.tolist()"  # a 1-D tensor of sizes
        return ", ".join(self._int_arg(n) for n in nodes)

    def _float_target(self, spec, bound: dict, fields: dict) -> dict:
        """bce and mse read a target as the prediction's dtype and shape: convert where they differ."""
        first, second = spec.args[0].name, spec.args[1].name
        prediction, target = self._value(bound[first]), self._value(bound[second])
        import torch

        if (isinstance(prediction, torch.Tensor) and isinstance(target, torch.Tensor)
                and prediction.dtype == target.dtype and prediction.shape == target.shape):
            return fields
        p = fields[first]
        t = self.names["torch"]
        fields = dict(fields)
        fields[second] = f"{t}.as_tensor({fields[second]}, dtype={p}.dtype).expand_as({p})"
        return fields

    def _value(self, node: ast.expr):
        """The value the language gives `node`, by its own evaluator over a run of the program."""
        from explorer.core.lang.program import _Runner

        if self._values is None:
            run = self.program.run(self.overrides or None)
            self._values = _Runner(self.program, None, None)
            self._values.env = dict(run.env)
        try:
            return self._values._eval(node)
        except Exception:  # noqa: BLE001 -- a program that fails to run exports as written
            return None

    def _uses_rng(self, node: ast.AST) -> bool:
        return any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in OPS
                   and OPS[n.func.id].needs_rng for n in ast.walk(node))


def _fd_limit() -> str:
    from explorer.core.autograd.gradcheck import MAX_FD_ELEMENTS

    return f"{MAX_FD_ELEMENTS:_}"


def _is_header(line: str) -> bool:
    return bool(re.match(r"\s*#\s*(title|lr)\s*:", line, re.IGNORECASE))


def _title(source: str) -> str:
    from explorer.core.lang.examples import example_title

    return example_title(source, "Expression").replace('"""', "'''")


def _literal_dict(values: dict) -> str:
    if not values:
        return "{}"
    return "{" + ", ".join(f"{k!r}: {v!r}" for k, v in values.items()) + "}"


__all__ = ["GRAD_PREFIX", "OUTPUT_PREFIX", "export_expression", "expression_document", "fill_template"]
