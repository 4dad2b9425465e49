"""Which system libraries Qt's xcb platform plugin is missing on this Linux machine, before Qt loads it.

Without this check a fresh Debian/Ubuntu desktop gets Qt's own abort ("Could not load the Qt platform
plugin "xcb" ... This application failed to start"), with a core dump and no word on what to install.
This module imports no Qt (it must run before PySide6 creates the QApplication, and its pure functions
are tested without Qt): it finds PySide6's libqxcb.so by path and loads it; when that fails it asks `ldd`
which of its libraries the dynamic loader cannot find, and names the apt packages that provide them.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Mapping
from pathlib import Path

# shared library (soname) -> the Debian/Ubuntu package that ships it. These are the libraries that
# PySide6's libqxcb.so and libQt6XcbQpa need beyond a base system (`objdump -p libqxcb.so | grep NEEDED`).
APT_PACKAGES: dict[str, str] = {
    "libxcb.so.1": "libxcb1",
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libX11.so.6": "libx11-6",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libGL.so.1": "libgl1",
    "libEGL.so.1": "libegl1",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libglib-2.0.so.0": "libglib2.0-0",
    "libgthread-2.0.so.0": "libglib2.0-0",
    "libdbus-1.so.3": "libdbus-1-3",
}

# The one apt line of the README's set-up: every package above that a minimal desktop may lack.
README_APT_PACKAGES = (
    "libxcb-cursor0", "libxcb-icccm4", "libxcb-image0", "libxcb-keysyms1", "libxcb-randr0",
    "libxcb-render-util0", "libxcb-shape0", "libxcb-sync1", "libxcb-xfixes0", "libxcb-xkb1",
    "libxkbcommon-x11-0", "libegl1", "libgl1", "libfontconfig1", "libdbus-1-3",
)


def missing_from_ldd(ldd_output: str) -> list[str]:
    """The sonames that `ldd` reports as "not found", each once, in the order ldd printed them."""
    missing: list[str] = []
    for line in ldd_output.splitlines():
        name, sep, where = line.strip().partition("=>")
        if sep and where.strip() == "not found" and name.strip() not in missing:
            missing.append(name.strip())
    return missing


def apt_command(missing: list[str]) -> str:
    """`sudo apt install ...` for the packages that provide `missing` (unknown sonames are skipped)."""
    packages: list[str] = []
    for soname in missing:
        package = APT_PACKAGES.get(soname)
        if package and package not in packages:
            packages.append(package)
    return "sudo apt install " + " ".join(packages) if packages else ""


def missing_libraries_message(missing: list[str]) -> str | None:
    """The one message the app prints when the xcb plugin cannot load, or None when nothing is missing."""
    if not missing:
        return None
    command = apt_command(missing)
    unknown = [s for s in missing if s not in APT_PACKAGES]
    text = (f"Qt's xcb platform plugin cannot load: missing system "
            f"{'library' if len(missing) == 1 else 'libraries'} {', '.join(missing)}.")
    if command:
        text += f" On Debian/Ubuntu install {'it' if len(missing) == 1 else 'them'} with: {command}"
    if unknown:
        text += f" (find the package that provides {', '.join(unknown)} with your package manager)"
    return text


def wants_xcb(environ: Mapping[str, str], platform: str) -> bool:
    """Whether Qt would load the xcb plugin: Linux, with QT_QPA_PLATFORM unset or xcb."""
    if not platform.startswith("linux"):
        return False
    return environ.get("QT_QPA_PLATFORM", "").strip().lower() in ("", "xcb")


def xcb_plugin_path() -> Path | None:
    """PySide6's libqxcb.so, found without importing PySide6 (None when it is not there)."""
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        path = Path(root) / "Qt" / "plugins" / "platforms" / "libqxcb.so"
        if path.is_file():
            return path
    return None


def find_missing_xcb_libraries() -> list[str]:
    """The libraries libqxcb.so needs that the loader cannot find here ([] when all are there, or when
    it cannot tell: no ldd, no plugin file).

    The plugin is loaded first, as Qt would load it (then Qt finds it loaded); only when that fails does
    `ldd` list every missing library (its run, a process of its own, is not paid at every start)."""
    plugin = xcb_plugin_path()
    if plugin is None or plugin_loads(plugin):
        return []
    return ldd_missing(plugin)


def plugin_loads(plugin: Path) -> bool:
    """Whether the dynamic loader loads `plugin` with every library it needs (no Qt is imported)."""
    import ctypes

    try:
        ctypes.CDLL(str(plugin), mode=os.RTLD_LAZY)
    except OSError:
        return False
    return True


LDD_TIMEOUT_S = 10.0  # an ldd that does not answer in this time is taken as "nothing missing"


def ldd_missing(plugin: Path) -> list[str]:
    """The libraries `ldd` says the loader cannot find for `plugin` ([] when it cannot tell: no ldd, or no
    answer within LDD_TIMEOUT_S). Run only when the plugin did not load, when the app is about to say what
    to install and exit, so its modules are imported here and not at every start."""
    import shutil
    import subprocess

    ldd = shutil.which("ldd")
    if ldd is None:
        return []
    # Qt's own libraries sit next to the plugin's package; ldd must find them the way Qt's loader does
    env = dict(os.environ)
    qt_lib = str(plugin.parents[2] / "lib")
    env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (qt_lib, env.get("LD_LIBRARY_PATH", "")) if p)
    try:
        done = subprocess.run([ldd, str(plugin)], capture_output=True, text=True, timeout=LDD_TIMEOUT_S,
                              env=env)
    except (OSError, subprocess.SubprocessError):
        return []
    return missing_from_ldd(done.stdout)


def xcb_problem(environ: Mapping[str, str], platform: str) -> str | None:
    """The message to print before creating the QApplication when xcb is wanted and cannot load."""
    if not wants_xcb(environ, platform):
        return None
    return missing_libraries_message(find_missing_xcb_libraries())


def start_xcb_check(environ: Mapping[str, str], platform: str) -> Callable[[], str | None]:
    """xcb_problem as a function to call once PySide6 is imported, before the QApplication (Qt's own
    libraries are in the process by then: loading the plugin costs only the xcb libraries)."""
    if not wants_xcb(environ, platform):
        return lambda: None
    return lambda: missing_libraries_message(find_missing_xcb_libraries())
