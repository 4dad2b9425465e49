"""Lesson text is inert (issue 24, item 5): what explorer.core.lessons.markup lets the Learn panel render,
load and follow. The panel's side (Qt never reads a file itself) is tests/ui/test_lesson_text.py."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import pytest

from explorer.core import files
from explorer.core.lessons import load_catalog
from explorer.core.lessons.markup import (
    MAX_IMAGES,
    MAX_NESTING,
    MAX_TEXT_CHARS,
    MarkupProblem,
    external_link,
    image_names,
    image_size,
    label_markdown,
    nesting_depth,
    prepare,
    read_image,
)
from explorer.core.lessons.runner import parse_lesson


def png(width: int = 2, height: int = 2) -> bytes:
    """A valid PNG of `width`×`height` grey pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


@pytest.fixture
def folder(tmp_path):
    lesson = tmp_path / "lessons"
    (lesson / "img").mkdir(parents=True)
    (lesson / "fig.png").write_bytes(png())
    (lesson / "img" / "in sub.png").write_bytes(png(3, 1))
    (tmp_path / "outside.png").write_bytes(png())
    os.mkfifo(lesson / "pipe.png")
    os.symlink("/dev/zero", lesson / "zero.png")
    os.symlink(tmp_path / "outside.png", lesson / "link.png")
    os.symlink(tmp_path, lesson / "up")
    (lesson / "notes.txt").write_text("secret", encoding="utf-8")
    (lesson / "fake.png").write_bytes(b"not an image at all")
    (lesson / "dir.png").mkdir()
    return lesson


def test_images_of_the_lesson_folder_are_read(folder):
    assert read_image(folder, "fig.png") == png()
    assert read_image(folder, "img/in%20sub.png") == png(3, 1)
    assert read_image(folder, "./img/in sub.png") == png(3, 1)


@pytest.mark.parametrize("name, needle", [
    ("pipe.png", "not a regular file"),  # a FIFO: refused by stat, never opened (it would block)
    ("zero.png", "symbolic link"),  # /dev/zero behind a link: never followed
    ("link.png", "symbolic link"),
    ("up/outside.png", "symbolic link"),
    ("/dev/zero", "lesson's own folder"),
    ("file:///dev/zero", "never from a URL"),
    ("http://127.0.0.1:9/x.png", "never from a URL"),
    ("data:image/png;base64,iVBORw0KGgo=", "never from a URL"),
    ("../outside.png", "lesson's own folder"),
    ("img/../../outside.png", "lesson's own folder"),
    ("notes.txt", ".png, .jpg or .gif"),
    ("fake.png", "not a PNG, JPEG or GIF"),
    ("dir.png", "folder"),
    ("missing.png", "no such file"),
    ("C:\\x.png", "never from a URL"),
    ("img\\fig.png", "not a file name"),
])
def test_images_that_must_not_be_read_are_refused_in_one_line(folder, name, needle):
    with pytest.raises(MarkupProblem, match=needle) as info:
        read_image(folder, name)
    assert "\n" not in str(info.value)


def test_an_image_needs_a_lesson_folder():
    with pytest.raises(MarkupProblem, match="no lesson folder"):
        read_image(None, "fig.png")


def test_images_are_size_capped(folder):
    (folder / "big.png").write_bytes(png() + b"\0" * (files.LIMITS["image"]))
    with pytest.raises(MarkupProblem, match="more than"):
        read_image(folder, "big.png")
    (folder / "wide.png").write_bytes(png(100_000, 1)[:40])  # a small file declaring a huge picture
    with pytest.raises(MarkupProblem, match="pixels"):
        read_image(folder, "wide.png")


def test_image_sizes_are_read_from_headers():
    assert image_size(png(7, 5)) == (7, 5)
    assert image_size(b"GIF89a" + struct.pack("<HH", 9, 4) + b"\0" * 10) == (9, 4)
    app0 = b"\xff\xe0" + struct.pack(">H", 4) + b"\0\0"
    jpeg = b"\xff\xd8" + app0 + b"\xff\xc0" + struct.pack(">HBHH", 11, 8, 6, 8)
    assert image_size(jpeg) == (8, 6)
    assert image_size(b"<svg xmlns='http://www.w3.org/2000/svg'/>") is None


def test_prepare_loads_the_folder_images_and_says_which_were_not_shown(folder):
    text = ("![a](fig.png) ![b](http://127.0.0.1:9/x.png) ![c](pipe.png) ![d](/dev/zero) ![a again](fig.png)"
            " [link](file:///etc/passwd)")
    prepared = prepare(text, folder)
    assert prepared.refused is None and prepared.markdown == text
    assert prepared.images == {"fig.png": png()}
    assert prepared.note.startswith("Image not shown: http://127.0.0.1:9/x.png (images come only from")
    assert "and 2 more" in prepared.note and "\n" not in prepared.note


def test_a_step_loads_at_most_max_images(folder):
    text = " ".join(f"![i](fig.png?{i})" for i in range(MAX_IMAGES + 3))
    prepared = prepare(text, folder)
    assert len(prepared.images) == MAX_IMAGES
    assert f"at most {MAX_IMAGES} images" in prepared.note


def test_600_remote_images_load_nothing():
    prepared = prepare("![x](http://127.0.0.1:9/a.png)\n" * 600, None)
    assert prepared.images == {} and prepared.refused is None


def test_image_names_are_the_inline_images():
    text = '![a](one.png) ![b](<two words.png>) ![c](three.png "title") [not](four.png) `code`'
    assert image_names(text) == ["one.png", "two words.png", "three.png"]


@pytest.mark.parametrize("text, depth", [
    ("plain", 0),
    ("> quote", 1),
    ("> > > x", 3),
    ("- a\n  - b\n    - c\n", 3),
    ("1. a\n   1. b\n", 2),
    ("- a\n\n  more of a\n- b\n", 1),
    ("```\n> > > > not a quote\n```\n", 0),
])
def test_nesting_depth(text, depth):
    assert nesting_depth(text) == depth


@pytest.mark.parametrize("text", [
    "> " * (MAX_NESTING + 1) + "deep",
    "".join("  " * i + "- x\n" for i in range(MAX_NESTING + 1)),
    "x" * (MAX_TEXT_CHARS + 1),
])
def test_text_too_deep_or_too_long_is_refused_in_one_line(text):
    prepared = prepare(text, None)
    assert prepared.markdown == "" and prepared.images == {}
    assert prepared.refused.startswith("This step's text is not shown: ")
    assert "\n" not in prepared.refused


def test_nested_html_tables_are_text_with_a_note():
    """22 nested tables took Qt's HTML importer 37 s: HTML is never parsed, the panel says so."""
    text = "<table><tr><td>" * 22 + "x" + "</td></tr></table>" * 22
    prepared = prepare(text, None)
    assert prepared.refused is None
    assert "HTML in a lesson shows as written" in prepared.note


def test_every_shipped_step_renders_without_a_note():
    for lesson in load_catalog().lessons:
        assert lesson.folder is not None
        for step in lesson.steps:
            assert prepare(step.text, lesson.folder).note == "", (lesson.id, step.id)


def test_a_lesson_from_text_has_no_folder_and_a_file_cannot_name_one():
    text = 'id = "x"\ntitle = "t"\n[[steps]]\nid = "s"\ntitle = "s"\ntext = "hi"\n'
    assert parse_lesson(text).folder is None
    with pytest.raises(Exception, match="folder"):
        parse_lesson('folder = "/"\n' + text)


@pytest.mark.parametrize("url, opened", [
    ("https://pytorch.org/docs/stable/autograd.html", True),
    ("http://127.0.0.1:8000/", True),
    ("HTTPS://example.org", True),
    ("file:///etc/passwd", False),
    ("/etc/passwd", False),
    ("notes.txt", False),
    ("#anchor", False),
    ("javascript:alert(1)", False),
    ("data:text/html,<b>x</b>", False),
    ("mailto:a@b.c", False),
    ("http:///no-host", False),
    ("http://exa mple.org", False),
])
def test_only_http_links_with_a_host_open(url, opened):
    assert (external_link(url) is not None) is opened


def test_label_markdown_cannot_start_html_or_an_image():
    text = label_markdown('<img src="/dev/zero"> ![x](pipe.png) a < b')
    assert "<" not in text and "![" not in text
    assert len(label_markdown("x" * 100_000)) < 5_000


def test_paths_are_written_relative_in_notes(folder):
    note = prepare("![x](missing.png)", folder).note
    assert str(Path(folder)) not in note
