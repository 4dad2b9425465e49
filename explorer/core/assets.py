"""Where the app's data files are: the examples and lessons of the top-level `assets/` folder.

In an installed wheel they ship inside the package (`explorer/assets/...`, mapped there by the build
backend) and are found through `importlib.resources`; in a source checkout (or an editable install,
which points at the checkout) they are the top-level `assets/` folder next to `explorer/`.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def assets_dir() -> Path:
    """The folder of `examples/` and `lessons/`: the package's `assets` if installed, else the checkout's."""
    packaged = Path(str(resources.files("explorer") / "assets"))
    if packaged.is_dir():
        return packaged
    return Path(str(resources.files("explorer"))).parent / "assets"
