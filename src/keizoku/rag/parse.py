"""Read documents (Markdown, text, HTML, PDF, DOCX) into titled sections and an access list.

A parsed document is a title plus sections; each section has a heading path (the
headings above it, outermost first) and its text. The access list comes from, in order,
YAML front matter (``allow: [group:hr, user:alice]``), a sidecar file next to the
document (``doc.md.acl``: one entry a line, or ``doc.md.meta.yaml`` with ``allow:``),
and the ``--allow`` entries given to the ingest command; all of them are merged.
"""

from __future__ import annotations

import html
import re
import zipfile
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from keizoku.errors import UserInputError, require_extra
from keizoku.rag.access import normalize_acl

__all__ = ["Section", "ParsedDoc", "SUFFIXES", "parse_file", "parse_text", "read_sidecar_acl"]

SUFFIXES = {
    ".md": "markdown", ".markdown": "markdown", ".txt": "text", ".text": "text", ".rst": "text",
    ".html": "html", ".htm": "html", ".pdf": "pdf", ".docx": "docx",
}  # fmt: skip


@dataclass
class Section:
    heading_path: tuple[str, ...]
    text: str


@dataclass
class ParsedDoc:
    title: str
    kind: str
    sections: list[Section]
    acl: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)


_FRONT = re.compile(r"\A---\s*\n(.*?)\n(?:---|\.\.\.)\s*(?:\n|\Z)", re.DOTALL)
_MD_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")


def _front_matter(text: str, source: str) -> tuple[dict[str, Any], str]:
    match = _FRONT.match(text)
    if not match:
        return {}, text
    import yaml

    try:
        data = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as exc:
        raise UserInputError(
            f"Front matter of {source} is not valid YAML ({exc.__class__.__name__}). "
            "Fix the block between the '---' lines, e.g. 'allow: [group:hr, user:alice]'."
        ) from exc
    if not isinstance(data, dict):
        data = {}
    return data, text[match.end() :]


def _allow_from(meta: dict[str, Any], source: str) -> tuple[str, ...]:
    raw = meta.get("allow", [])
    if isinstance(raw, str):
        raw = [p for p in re.split(r"[,\s]+", raw) if p]
    if not isinstance(raw, list):
        raise UserInputError(
            f"'allow' in {source} has value {raw!r}. Write a list: allow: [group:hr, user:alice]."
        )
    return normalize_acl(str(x) for x in raw)


def _markdown_sections(text: str) -> tuple[str | None, list[Section]]:
    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    buf: list[str] = []
    first_title: str | None = None
    in_code = False

    def flush() -> None:
        body = "\n".join(buf).strip()
        if body:
            sections.append(Section(tuple(h for _, h in path), body))
        buf.clear()

    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            in_code = not in_code
        match = None if in_code else _MD_HEADING.match(line)
        if match:
            flush()
            level, heading = len(match.group(1)), match.group(2).strip()
            if first_title is None and level == 1:
                first_title = heading
            path = [(lv, h) for lv, h in path if lv < level] + [(level, heading)]
        else:
            buf.append(line)
    flush()
    return first_title, sections


class _HTMLSections(HTMLParser):
    _SKIP = {"script", "style", "noscript", "template", "head"}
    _BLOCK = {"p", "div", "li", "br", "tr", "section", "article", "blockquote", "pre", "td"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title: str | None = None
        self.sections: list[Section] = []
        self._path: list[tuple[int, str]] = []
        self._buf: list[str] = []
        self._skip = 0
        self._heading: int | None = None
        self._hbuf: list[str] = []
        self._in_title = False
        self._tbuf: list[str] = []

    def _flush(self) -> None:
        body = re.sub(r"[ \t]+", " ", "".join(self._buf))
        body = re.sub(r"\s*\n\s*", "\n", body).strip()
        if body:
            self.sections.append(Section(tuple(h for _, h in self._path), body))
        self._buf.clear()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        elif tag in self._SKIP:
            self._skip += 1
        elif re.fullmatch(r"h[1-6]", tag):
            self._flush()
            self._heading = int(tag[1])
            self._hbuf = []
        elif tag in self._BLOCK:
            self._buf.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag in self._SKIP:
            self._skip = max(0, self._skip - 1)
        elif self._heading is not None and tag == f"h{self._heading}":
            heading = " ".join("".join(self._hbuf).split())
            level = self._heading
            self._heading = None
            if heading:
                if self.title is None and level == 1:
                    self.title = heading
                self._path = [(lv, h) for lv, h in self._path if lv < level] + [(level, heading)]
        elif tag in self._BLOCK:
            self._buf.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self._tbuf.append(data)
        elif self._skip:
            return
        elif self._heading is not None:
            self._hbuf.append(data)
        else:
            self._buf.append(data)

    def close(self) -> None:
        super().close()
        self._flush()
        head_title = " ".join("".join(self._tbuf).split())
        if head_title:
            self.title = head_title


def _pdf_sections(path: Path) -> list[Section]:
    pypdf = require_extra("pypdf", "rag")
    try:
        reader = pypdf.PdfReader(str(path))
        pages = [page.extract_text() or "" for page in reader.pages]
    except (pypdf.errors.PdfReadError, ValueError, KeyError) as exc:
        raise UserInputError(
            f"PDF {path} cannot be read ({exc}). Check that the file is a valid, unencrypted PDF."
        ) from exc
    return [
        Section((f"page {i + 1}",), " ".join(text.split()))
        for i, text in enumerate(pages)
        if text.strip()
    ]


def _docx_sections(path: Path) -> tuple[str | None, list[Section]]:
    """DOCX with the standard library: paragraphs of word/document.xml, Heading styles kept."""
    try:
        with zipfile.ZipFile(path) as zf:
            xml = zf.read("word/document.xml").decode("utf-8")
    except (zipfile.BadZipFile, KeyError) as exc:
        raise UserInputError(f"DOCX {path} cannot be read ({exc}). Re-save it as .docx.") from exc
    lines: list[str] = []
    for para in re.findall(r"<w:p[ >].*?</w:p>", xml, flags=re.DOTALL):
        text = html.unescape("".join(re.findall(r"<w:t[^>]*>(.*?)</w:t>", para, re.DOTALL)))
        style = re.search(r'<w:pStyle w:val="Heading(\d)"', para)
        if style and text.strip():
            lines.append("#" * int(style.group(1)) + " " + text.strip())
        elif text.strip():
            lines.append(text)
        lines.append("")
    return _markdown_sections("\n".join(lines))


def read_sidecar_acl(path: Path) -> tuple[str, ...]:
    """Access entries from ``<file>.acl`` (one a line, '#' comments) or ``<file>.meta.yaml``."""
    entries: list[str] = []
    acl_file = path.with_name(path.name + ".acl")
    if acl_file.is_file():
        for line in acl_file.read_text(encoding="utf-8").splitlines():
            line = line.split("#", 1)[0].strip()
            entries.extend(p for p in re.split(r"[,\s]+", line) if p)
    meta_file = path.with_name(path.name + ".meta.yaml")
    if meta_file.is_file():
        import yaml

        try:
            data = yaml.safe_load(meta_file.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise UserInputError(
                f"Sidecar {meta_file} is not valid YAML. Write e.g. 'allow: [group:hr]'."
            ) from exc
        entries.extend(_allow_from(data if isinstance(data, dict) else {}, str(meta_file)))
    return normalize_acl(entries)


def parse_text(text: str, kind: str, source: str) -> ParsedDoc:
    """Parse in-memory text of ``kind`` markdown, text or html."""
    meta, body = _front_matter(text, source) if kind in ("markdown", "text") else ({}, text)
    title: str | None = None
    if kind == "markdown":
        title, sections = _markdown_sections(body)
    elif kind == "html":
        parser = _HTMLSections()
        parser.feed(body)
        parser.close()
        title, sections = parser.title, parser.sections
    else:
        sections = [Section((), body.strip())] if body.strip() else []
    title = str(meta.get("title") or title or Path(source).stem)
    return ParsedDoc(title, kind, sections, _allow_from(meta, source), meta)


def parse_file(path: Path) -> ParsedDoc:
    """Parse one file by its suffix (``acl`` holds only the front matter's entries)."""
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise UserInputError(
            f"File {path} has suffix {path.suffix!r}, which keizoku cannot read. "
            f"Supported: {', '.join(sorted(SUFFIXES))}."
        )
    if kind == "pdf":
        doc = ParsedDoc(path.stem, kind, _pdf_sections(path))
    elif kind == "docx":
        title, sections = _docx_sections(path)
        doc = ParsedDoc(title or path.stem, kind, sections)
    else:
        doc = parse_text(path.read_text(encoding="utf-8", errors="replace"), kind, str(path))
    return doc
