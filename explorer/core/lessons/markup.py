"""Lesson text made inert before Qt sees it (Qt-free): what a step's Markdown may show and load.

Lesson files are user input (the format is documented for teachers), so the text of a step is checked
and its references decided here, and the Learn panel renders only what this module allows:

- HTML: none. The panel renders Markdown with HTML switched off (Qt's MarkdownNoHTML), so a tag shows as
  the characters written; `prepare` adds a one-line note when the text holds something that looks like
  one. Markdown covers what a lesson needs (emphasis, code, lists, tables, links, images).
- Links open only when the student clicks them, and only `http`/`https` links with a host
  (`external_link`), in the system browser. Links to files, folders or other schemes are never followed.
- Images come only from the lesson's own folder: a relative name (no scheme, no absolute path, no `..`,
  no symbolic link on the way), a PNG, JPEG or GIF regular file of at most LIMITS["image"] bytes read
  through `explorer.core.files`, at most MAX_IMAGE_SIDE pixels a side, at most MAX_IMAGES per step.
  Every other image shows as a placeholder and the panel says why in one line.
- Rendering is bounded: a step's text holds at most MAX_TEXT_CHARS characters and nests block quotes and
  lists at most MAX_NESTING deep; other text is refused with one line and not rendered at all.
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from explorer.core import files

MAX_TEXT_CHARS = 20_000
"""The longest step text rendered (the lessons that ship have steps of at most about 700 characters)."""

MAX_NESTING = 16
"""The deepest nesting of block quotes and lists rendered."""

MAX_IMAGES = 12
"""The most images one step loads."""

MAX_IMAGE_SIDE = 4096
"""The widest and tallest image loaded, in pixels (a small file can declare a huge picture)."""

MAX_LABEL_CHARS = 4_000
"""The longest prompt, hint or feedback shown in a label (longer text is cut with an ellipsis)."""

IMAGE_KINDS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".gif": "GIF"}

# `![alt](dest "title")` and `![alt](<dest>)`: the inline images whose files the panel may load.
_IMAGE = re.compile(r"!\[(?:[^\]\\]|\\.)*\]\(\s*(?:<([^<>\n]*)>|([^\s()<>]+))")
# something a reader would take for an HTML tag or comment
_TAG = re.compile(r"<(?:/?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>]*)?/?>|!--)")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_QUOTE_OR_ITEM = re.compile(r" {0,3}(?:>|(?:[-+*]|\d{1,9}[.)])(?:[ \t]|$))")


class MarkupProblem(ValueError):
    """A reference a lesson may not use (an image outside the folder, a link to a file): one line."""


@dataclass
class PreparedText:
    """A step's text as the panel may render it.

    `markdown` is what to render ("" when `refused`), `images` the loaded images by the name written in
    the text, `notes` one-line remarks (images not shown, HTML shown as text)."""

    markdown: str
    images: dict[str, bytes] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    refused: str | None = None

    @property
    def note(self) -> str:
        """The refusal or the notes, in one line ("" when there is nothing to say)."""
        return self.refused or "; ".join(self.notes)


def prepare(text: str, folder: str | os.PathLike | None) -> PreparedText:
    """Check a step's Markdown and load the images it may show from `folder` (None: no images)."""
    problem = text_problem(text)
    if problem:
        return PreparedText("", refused=f"This step's text is not shown: {problem}.")
    prepared = PreparedText(text)
    refused: list[str] = []
    for name in image_names(text):
        if name in prepared.images:
            continue
        if len(prepared.images) >= MAX_IMAGES:
            refused.append(f"{_short(name)} (a step shows at most {MAX_IMAGES} images)")
            continue
        try:
            prepared.images[name] = read_image(folder, name)
        except MarkupProblem as exc:
            refused.append(f"{_short(name)} ({exc})")
    if refused:
        more = f" and {len(refused) - 1} more" if len(refused) > 1 else ""
        prepared.notes.append(f"Image not shown: {refused[0]}{more}")
    if _TAG.search(text):
        prepared.notes.append("HTML in a lesson shows as written: lesson text is Markdown")
    return prepared


def text_problem(text: str) -> str | None:
    """Why a step's text is not rendered (too long, nested too deeply), or None."""
    if len(text) > MAX_TEXT_CHARS:
        return f"{len(text):,} characters, more than the {MAX_TEXT_CHARS:,} a step may have"
    depth = nesting_depth(text)
    if depth > MAX_NESTING:
        return f"block quotes and lists nest {depth} deep, more than the {MAX_NESTING} a step may have"
    return None


def nesting_depth(text: str) -> int:
    """How deep block quotes and list items nest in Markdown `text` (fenced code is skipped).

    An estimate that never undercounts a line's own markers: each `>` and each list marker at the start
    of a line counts one level, and so does each open list item whose content the line is indented into.
    """
    deepest, items, fence = 0, [], None  # items: the content columns of the open list items
    for line in text.splitlines():
        if fence is not None:
            if line.strip().startswith(fence):
                fence = None
            continue
        opened = _FENCE.match(line)
        if opened:
            fence = opened.group(1)[0] * 3
            continue
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip(" "))
        while items and indent < items[-1]:
            items.pop()
        depth, rest, column = len(items), line[indent:], indent
        while True:
            marker = _QUOTE_OR_ITEM.match(rest)
            if not marker:
                break
            depth += 1
            width = marker.end()
            if not marker.group(0).lstrip().startswith(">"):
                items.append(column + width)
            rest, column = rest[width:], column + width
        deepest = max(deepest, depth)
    return deepest


def image_names(text: str) -> list[str]:
    """The destinations of the inline images `![alt](name)` in Markdown `text`, in order, each once."""
    seen: dict[str, None] = {}
    for match in _IMAGE.finditer(text):
        seen.setdefault(match.group(1) if match.group(1) is not None else match.group(2), None)
    return list(seen)


def image_path(folder: str | os.PathLike | None, name: str) -> Path:
    """The file in `folder` that image `name` names (MarkupProblem if it may not be read).

    Only a relative name inside the folder: no scheme (http, file, data), no absolute path, no `..`, and
    no symbolic link on the way to it (a link could lead anywhere, a device or a pipe included).
    """
    if folder is None:
        raise MarkupProblem("this text has no lesson folder to take images from")
    parts = urlsplit(name)
    if parts.scheme or parts.netloc:
        raise MarkupProblem("images come only from the lesson's folder, never from a URL")
    relative = unquote(parts.path)
    if not relative or "\\" in relative or "\x00" in relative:
        raise MarkupProblem("not a file name")
    pure = PurePosixPath(relative)
    if pure.is_absolute() or ".." in pure.parts:
        raise MarkupProblem("images come only from the lesson's own folder")
    if pure.suffix.lower() not in IMAGE_KINDS:
        raise MarkupProblem("an image is a .png, .jpg or .gif file")
    base = Path(os.path.realpath(folder))
    path = base.joinpath(*pure.parts)
    walked = base
    for part in pure.parts:  # lstat each step: a symbolic link anywhere on the way is refused
        walked = walked / part
        if os.path.islink(walked):
            raise MarkupProblem("a symbolic link is never followed")
    if os.path.realpath(path) != str(path):
        raise MarkupProblem("images come only from the lesson's own folder")
    return path


def read_image(folder: str | os.PathLike | None, name: str) -> bytes:
    """The bytes of image `name` of the lesson `folder`, checked (MarkupProblem with one line otherwise)."""
    path = image_path(folder, name)
    try:
        data = files.read_bytes(path, "image")
    except files.FileProblem as exc:
        raise MarkupProblem(str(exc).split(": ", 1)[-1]) from None
    size = image_size(data)
    if size is None:
        raise MarkupProblem("not a PNG, JPEG or GIF image")
    if max(size) > MAX_IMAGE_SIDE or min(size) < 1:
        raise MarkupProblem(f"{size[0]}×{size[1]} pixels; at most {MAX_IMAGE_SIDE} a side")
    return data


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) that a PNG, GIF or JPEG file declares, read from its header; None for others."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24 and data[12:16] == b"IHDR":
        return struct.unpack(">II", data[16:24])
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return struct.unpack("<HH", data[6:10])
    if data.startswith(b"\xff\xd8"):
        return _jpeg_size(data)
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2:i + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # a start of frame
            if i + 9 > len(data):
                return None
            height, width = struct.unpack(">HH", data[i + 5:i + 9])
            return width, height
        if length < 2:
            return None
        i += 2 + length
    return None


def external_link(url: str) -> str | None:
    """The address to open in the system browser when the student clicks link `url`, or None.

    Only `http` and `https` links with a host are opened; links to files, folders, anchors and other
    schemes (file, data, javascript, mailto, ...) are never followed."""
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    if any(ord(c) < 0x21 for c in url):
        return None
    return url


def link_note(url: str) -> str:
    """The one line the panel shows when the student clicks a link that is not followed."""
    return f"Links to files and other places are not opened from a lesson: {_short(url)}"


def label_markdown(text: str) -> str:
    """`text` (a prompt, a hint, a checked answer) made inert for a label that renders Markdown.

    Every `<` becomes an entity, so nothing can start HTML, and `![` loses its image meaning, so a
    label never loads a file (a link in a label is never followed: labels do not open links). Text
    longer than MAX_LABEL_CHARS is cut."""
    if len(text) > MAX_LABEL_CHARS:
        text = text[:MAX_LABEL_CHARS] + "…"
    return text.replace("<", "&lt;").replace("![", "&#33;[")


def _short(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"
