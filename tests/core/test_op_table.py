"""Every op of the table keeps its whole story in one OpSpec, and its `torch_code` computes what `fn` does.

The test builds Python text from the table's own templates and runs it with real torch: code generated
here from the op table, never from user input.
"""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F

from explorer.core.lang import ops

# sample arguments where the generic ones (a (2, 3) tensor in (0.1, 0.9) per tensor argument) do not fit
_SAMPLES = {
    "matmul": lambda: (torch.rand(2, 3), torch.rand(3, 4)),
    "linear": lambda: (torch.rand(2, 3), torch.rand(4, 3), torch.rand(4)),
    "layer_norm": lambda: (torch.rand(2, 3), torch.rand(3), torch.rand(3)),
    "transpose": lambda: (torch.rand(2, 3), 0, 1),
    "reshape": lambda: (torch.rand(2, 3), 3, 2),
    "view": lambda: (torch.rand(2, 3), 6),
    "unsqueeze": lambda: (torch.rand(2, 3), 1),
    "squeeze": lambda: (torch.rand(2, 1, 3), None),
    "sum": lambda: (torch.rand(2, 3), 1),
    "mean": lambda: (torch.rand(2, 3), None),
    "to": lambda: (torch.rand(2, 3), torch.float64),
    "cross_entropy": lambda: (torch.randn(4, 3), torch.tensor([0, 2, 1, 2])),
    "nll": lambda: (torch.log_softmax(torch.randn(4, 3), 1), torch.tensor([0, 2, 1, 2])),
    "param": lambda: (torch.tensor([1.5, -2.0]),),
    "randn": lambda: (2, 3), "rand": lambda: (2, 3), "zeros": lambda: (2, 3), "ones": lambda: (2, 3),
    "eye": lambda: (3,), "arange": lambda: (4,), "seed": lambda: (7,),
    "pow": lambda: (torch.rand(2, 3) + 0.1, torch.tensor(1.7)),
}
_SAME_SHAPE_ONLY = {"dropout"}  # its mask comes from the program's generator: compare the shape
_NOT_A_VALUE = {"seed"}  # sets the random state: the code must run, its result is a generator


def _samples(spec):
    if spec.name in _SAMPLES:
        return _SAMPLES[spec.name]()
    out = []
    for arg in spec.args:
        if arg.kind == "tensor" and arg.required:
            out.append(torch.rand(2, 3) * 0.8 + 0.1)
        elif not arg.required:
            out.append(arg.default)
        else:
            raise AssertionError(f"no sample for {spec.name}({arg.name})")
    return tuple(out)


def _code(spec, values: tuple) -> tuple[str, dict]:
    """The op as torch text: each argument a variable v0, v1, ... (a variadic argument takes the rest)."""
    env, fields = {}, {}
    for i, arg in enumerate(spec.args):
        taken = values[i:] if arg.variadic else values[i:i + 1]
        names = []
        for j, value in enumerate(taken):
            env[f"v{i}_{j}"] = value
            names.append(f"v{i}_{j}")
        fields[arg.name] = ", ".join(names) if taken and taken[0] is not None else None
    text = re.sub(r"⟦([^⟧]*)⟧", lambda m: "" if any(fields[k] is None for k in
                                                      re.findall(r"\{(\w+)\}", m.group(1))) else m.group(1),
                  spec.torch_code)
    return text.format(**{k: "None" if v is None else v for k, v in fields.items()}), env


def _run_fn(spec, values):
    if spec.needs_rng:
        return spec.fn(torch.Generator().manual_seed(0), *values)
    return spec.fn(*values)


@pytest.mark.parametrize("name", sorted(ops.OPS))
def test_torch_code_computes_what_fn_computes(name):
    spec = ops.OPS[name]
    assert spec.torch_code, f"{name} has no torch_code"
    values = _samples(spec)
    text, env = _code(spec, values)
    torch.manual_seed(0)
    got = eval(compile(text, f"<{name}>", "eval"), {"torch": torch, "F": F}, env)  # noqa: S307 - table text
    if name in _NOT_A_VALUE:
        assert isinstance(got, torch.Generator)
        return
    expected = _run_fn(spec, values)
    expected = torch.as_tensor(expected)
    assert tuple(got.shape) == tuple(expected.shape), text
    if name not in _SAME_SHAPE_ONLY:
        assert got.dtype == expected.dtype, text
        torch.testing.assert_close(got.detach(), expected.detach(), msg=text)


def test_one_op_in_one_place():
    assert not hasattr(ops, "_CHAIN") and not hasattr(ops, "_VJP")
    assert ops.METHODS == {s.method: s.name for s in ops.OPS.values() if s.method}
    assert ops.OPS["sigmoid"].chain == ("σ({0})(1 − σ({0}))",)
    assert ops.OPS["matmul"].manual_vjp is not None and ops.OPS["matmul"].method == "matmul"
    assert ops.OPS["mul"].torch_code == "{a} * {b}"
