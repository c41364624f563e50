"""Ingest: formats, chunking along headings, incremental re-ingest."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from keizoku.errors import KeizokuWarning, NotFoundError, UserInputError
from keizoku.rag.access import Identity
from keizoku.rag.chunk import ChunkConfig, chunk_document
from keizoku.rag.collection import file_inputs, ingest, list_docs, search
from keizoku.rag.parse import parse_file, parse_text
from keizoku.rag.store import collection_dir

ALICE = Identity("alice", ("hr",))


def minimal_pdf(lines: list[str]) -> bytes:
    """A one-page PDF with a Helvetica text object, written byte by byte."""
    ops = ["BT", "/F1 12 Tf", "72 720 Td", "14 TL"]
    for line in lines:
        safe = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        ops.append(f"({safe}) Tj T*")
    ops.append("ET")
    stream = "\n".join(ops).encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, xref,
    )  # fmt: skip
    return bytes(out)


def minimal_docx(paragraphs: list[tuple[str | None, str]]) -> bytes:
    import io

    body = "".join(
        "<w:p>"
        + (f'<w:pPr><w:pStyle w:val="{style}"/></w:pPr>' if style else "")
        + f"<w:r><w:t>{text}</w:t></w:r></w:p>"
        for style, text in paragraphs
    )
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="http://schemas.'
        f'openxmlformats.org/wordprocessingml/2006/main"><w:body>{body}</w:body></w:document>'
    )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("word/document.xml", xml)
    return buf.getvalue()


def test_chunks_respect_headings_and_sentences_with_overlap() -> None:
    long = " ".join(f"Rule {i} says staff must file form {i} on time." for i in range(40))
    doc = parse_text(f"# Guide\n\nShort intro.\n\n## Leave\n\n{long}\n\n## Pay\n\nPaid monthly.",
                     "markdown", "g.md")  # fmt: skip
    chunks = chunk_document(doc, ChunkConfig(max_words=50, overlap_words=12))
    assert [c.heading_path for c in chunks][0] == ("Guide",)
    assert chunks[-1].heading_path == ("Guide", "Pay") and chunks[-1].text == "Paid monthly."
    leave = [c for c in chunks if c.heading_path == ("Guide", "Leave")]
    assert len(leave) > 3
    for prev, nxt in zip(leave, leave[1:], strict=False):
        assert nxt.text.split(". ")[0] in prev.text  # overlap: the next chunk starts inside prev
        assert nxt.text.endswith(".") and nxt.text.startswith("Rule")  # whole sentences
        assert len(nxt.text.split()) <= 50
    assert [c.position for c in chunks] == list(range(len(chunks)))
    assert all("Paid monthly" not in c.text for c in leave)  # never across a heading


def test_pdf_html_docx_and_text_are_ingested(tmp_path: Path, write) -> None:  # type: ignore[no-untyped-def]
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "policy.pdf").write_bytes(minimal_pdf(["Expense policy.", "Taxis are refunded "
                                                   "up to 40 euros per ride."]))  # fmt: skip
    write(docs / "page.html", "<html><head><title>Wiki page</title><style>p{}</style></head>"
          "<body><h1>Wiki</h1><h2>Parking</h2><p>Parking spot P7 belongs to the night "
          "shift.</p><script>var secretjs = 1;</script></body></html>")  # fmt: skip
    memo = [("Heading1", "Memo"), ("Heading2", "Badges"), (None, "Lost badges cost 15 euros.")]
    (docs / "memo.docx").write_bytes(minimal_docx(memo))
    write(docs / "notes.txt", "The wifi password rotates every Monday.")
    assert "Taxis are refunded" in parse_file(docs / "policy.pdf").sections[0].text
    report = ingest("formats", *file_inputs([docs], allow=["group:hr"]))
    assert len(report.added) == 4
    by_query = {
        "taxi refund per ride": ("policy.pdf", ("page 1",)),
        "who owns parking spot P7": ("page.html", ("Wiki", "Parking")),
        "price of a lost badge": ("memo.docx", ("Memo", "Badges")),
        "wifi password": ("notes.txt", ()),
    }
    for query, (name, heading) in by_query.items():
        top = search("formats", query, ALICE, k=1)[0]
        assert (Path(top.source).name, top.heading_path) == (name, heading)
    html_top = search("formats", "parking", ALICE, k=1)[0]
    assert html_top.title == "Wiki page" and "secretjs" not in html_top.text


def test_reingest_is_incremental(tmp_path: Path, write) -> None:  # type: ignore[no-untyped-def]
    docs = tmp_path / "docs"
    for i in range(4):
        write(docs / f"d{i}.md", f"# Doc {i}\n\nTopic number {i} is quokka{i}.")
    first = ingest("inc", *file_inputs([docs], allow=["group:hr"]))
    assert len(first.added) == 4 and first.chunks_embedded == 4
    again = ingest("inc", *file_inputs([docs], allow=["group:hr"]))
    assert (again.added, again.updated, again.removed, again.chunks_embedded) == ([], [], [], 0)
    assert len(again.unchanged) == 4
    write(docs / "d1.md", "# Doc 1\n\nTopic number 1 is now wombat1.")
    (docs / "d2.md").unlink()
    write(docs / "d4.md", "# Doc 4\n\nTopic number 4 is quokka4.")
    third = ingest("inc", *file_inputs([docs], allow=["group:hr"]))
    names = lambda xs: sorted(Path(x).name for x in xs)  # noqa: E731
    assert names(third.updated) == ["d1.md"] and names(third.removed) == ["d2.md"]
    assert names(third.added) == ["d4.md"] and third.chunks_embedded == 2
    assert third.chunks_total == 4
    for mode in ("lexical", "dense", "hybrid"):
        from keizoku.rag.index import FusionConfig

        hits = search("inc", "quokka2", ALICE, k=10, fusion=FusionConfig(mode=mode))
        assert all(Path(h.source).name != "d2.md" for h in hits)
        assert all("quokka1" not in h.text for h in hits)
    assert search("inc", "wombat1", ALICE, k=1)[0].text.endswith("wombat1.")
    assert sorted(Path(str(d["source"])).name for d in list_docs("inc")) == [
        "d0.md", "d1.md", "d3.md", "d4.md"]  # fmt: skip
    # old index generations are pruned: at most the current and the previous one remain
    assert len(list(collection_dir("inc").glob("gen-*"))) <= 2


def test_document_without_access_list_warns_and_is_invisible(tmp_path: Path, write) -> None:  # type: ignore[no-untyped-def]
    write(tmp_path / "orphan.md", "# Orphan\n\nNobody may read this.")
    with pytest.warns(KeizokuWarning, match="has no access list, so nobody can see it"):
        ingest("orph", *file_inputs([tmp_path / "orphan.md"]))
    assert search("orph", "orphan", Identity("root", ("admin",))) == []


def test_errors_name_the_fix(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError) as err:
        search("missing", "q", ALICE)
    assert err.value.message == (
        "Collection 'missing' does not exist. Create it with "
        "'keizoku rag ingest PATH --collection missing'."
    )
    with pytest.raises(UserInputError, match="Path .*nope does not exist"):
        file_inputs([tmp_path / "nope"])
    with pytest.raises(UserInputError, match=r"Collection name '\.\./x' is not valid"):
        ingest("../x", [])
