"""Take it home: what a workspace built, as a runnable PyTorch script or a Jupyter notebook.

```python
export_script("expression", workspace_or_source)   # -> str, a Python file
export_notebook("network", workspace_or_spec)       # -> nbformat.NotebookNode (validated)
```

`kind` is "expression" (an ExpressionWorkspace, or the program text), "network" (a NetworkWorkspace or a
NetSpec) or "pretrain" (a PretrainWorkspace, or a GPTConfig with `settings=` and `corpus_path=`). The code
imports torch alone (numpy for the toy data, `tokenizers` for a BPE run) and prints the numbers the app
shows. Generation is quick (milliseconds) and pure; `explorer.core.files.write_atomic` writes the result.
"""

from __future__ import annotations

import nbformat

from explorer.core.export.notebook import Document, to_notebook, to_script

KINDS = ("expression", "network", "pretrain")


class ExportError(ValueError):
    """What was asked cannot be exported (a program with an error, a spec that does not validate)."""


def export_document(kind: str, source, **options) -> Document:
    """The Document of one workspace (or of the object it holds); ExportError says what is wrong."""
    from explorer.core.gpt.model import ConfigError, GPTConfig
    from explorer.core.lang.program import ExprError
    from explorer.core.mlp.network import NetSpec, NetSpecError

    try:
        if kind == "expression":
            from explorer.core.export.expression import expression_document

            if isinstance(source, str):
                return expression_document(source, options.get("overrides"), options.get("title"))
            state = source.state
            return expression_document(state.source, dict(state.overrides), options.get("title"))
        if kind == "network":
            from explorer.core.export import network

            if isinstance(source, NetSpec):
                return network.network_document(source, **options)
            return network.workspace_document(source)
        if kind == "pretrain":
            from explorer.core.export import gpt
            from explorer.core.gpt.train import TrainSettings

            if isinstance(source, GPTConfig):
                settings = options.get("settings") or TrainSettings()
                return gpt.gpt_document(source, settings, options.get("corpus_path"),
                                        title=options.get("title", "Pretraining"))
            return gpt.workspace_document(source)
    except ExprError as exc:
        raise ExportError(f"the program has an error: {exc}") from None
    except (NetSpecError, ConfigError) as exc:
        raise ExportError(str(exc)) from None
    raise ExportError(f"unknown kind {kind!r}; choose one of {', '.join(KINDS)}")


def export_script(kind: str, source, **options) -> str:
    """The workspace (or program, spec, config) as a Python script."""
    return to_script(export_document(kind, source, **options))


def export_notebook(kind: str, source, **options) -> nbformat.NotebookNode:
    """The workspace (or program, spec, config) as a validated notebook."""
    return to_notebook(export_document(kind, source, **options))


def notebook_text(nb: nbformat.NotebookNode) -> str:
    """A notebook as the JSON text of an .ipynb file."""
    return nbformat.writes(nb)


__all__ = ["KINDS", "ExportError", "export_document", "export_notebook", "export_script", "notebook_text"]
