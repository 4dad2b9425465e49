"""The example programs of the Examples menu: `assets/examples/*.expr`, titled by `# Title:`.

They ship inside the package (`explorer/assets/examples` in the wheel), so an installed app finds them
through `importlib.resources`; a source checkout finds the top-level `assets/` (`explorer.core.assets`).
"""

from __future__ import annotations

from pathlib import Path

from explorer.core.assets import assets_dir

# The seed example, used when the examples folder is missing so the app still opens on something.
SEED_SOURCE = """# Title: Sigmoid neuron with binary cross-entropy
x = 1.1
y = 1.0
w = param(2.2)
b = param(0.0)
z = w * x + b
a = sigmoid(z)
L = bce(a, y)
"""


def examples_dir() -> Path:
    """The folder of the example programs (`assets/examples`; `explorer/assets/examples` in the wheel)."""
    return assets_dir() / "examples"


def _header(text: str, key: str) -> str | None:
    """The value of the first `# key: value` comment line, or None."""
    prefix = f"# {key}:"
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.lower().startswith(prefix):
            return stripped.split(":", 1)[1].strip() or None
    return None


def example_title(text: str, fallback: str) -> str:
    """The title given by the first `# Title:` line, or `fallback`."""
    return _header(text, "title") or fallback


def example_learning_rate(text: str) -> float | None:
    """The learning rate an example suggests with a `# lr: 0.1 (why)` line (positive, sane), else None."""
    value = _header(text, "lr")
    try:
        lr = float(value.split()[0]) if value is not None else None
    except ValueError:
        return None
    return lr if lr is not None and 0.0 < lr < 1e3 else None


def list_examples() -> list[tuple[str, str]]:
    """(name, title) of every example, sorted by name; the seed is always there."""
    found: dict[str, str] = {}
    folder = examples_dir()
    if folder.is_dir():
        for path in sorted(folder.glob("*.expr")):
            try:
                found[path.stem] = example_title(path.read_text(encoding="utf-8"), path.stem)
            except OSError:
                continue
    found.setdefault("seed_sigmoid_bce", example_title(SEED_SOURCE, "seed_sigmoid_bce"))
    return sorted(found.items())


def load_example(name: str) -> str:
    """The source of example `name` (file stem); raises KeyError for an unknown name."""
    path = examples_dir() / f"{name}.expr"
    if path.is_file():
        return path.read_text(encoding="utf-8")
    if name == "seed_sigmoid_bce":
        return SEED_SOURCE
    names = ", ".join(n for n, _ in list_examples())
    raise KeyError(f"unknown example {name!r}; known: {names}")
