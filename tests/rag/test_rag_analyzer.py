"""The analyzer a collection records (decision 0030): Snowball English for new collections,
Porter for those indexed before, Japanese unchanged, and a query always analysed like its
index."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from keizoku.errors import UserInputError
from keizoku.rag.access import Identity
from keizoku.rag.collection import (
    _build_generation,
    _index_text,
    collection_info,
    file_inputs,
    ingest,
    search,
)
from keizoku.rag.embed import EmbeddingConfig
from keizoku.rag.index import FusionConfig
from keizoku.rag.store import connect
from keizoku.rag.text import (
    DEFAULT_ANALYZER,
    LEGACY_ANALYZER,
    Analyzer,
    stem,
    tokenize,
    tokenize_query,
)

LEXICAL = FusionConfig(mode="lexical")
NONE = EmbeddingConfig(backend="none", model="none")
EVERYONE = Identity("u", ("everyone",))
TSUYU = "梅雨は、北海道と小笠原諸島を除く日本で見られる気象現象。国際連合の本部はどこにあるか"


def found(name: str, query: str) -> set[str]:
    return {Path(h.source).name for h in search(name, query, EVERYONE, k=5, fusion=LEXICAL)}


def test_new_collections_stem_english_with_snowball(tmp_path: Path, write) -> None:  # type: ignore[no-untyped-def]
    write(tmp_path / "docs" / "uni.txt", "The university was founded in 1890 by flies.")
    write(tmp_path / "docs" / "river.txt", "The river runs north past the old mill.")
    ingest("en", *file_inputs([tmp_path / "docs"], ["group:everyone"]), embedding=NONE)
    assert collection_info("en")["english_stemmer"] == "porter2"
    assert DEFAULT_ANALYZER.query_tokens("founding") == ["found"]
    assert found("en", "founding") == {"uni.txt"}  # "founded" from "founding"
    # Porter 1980 (as keizoku wrote it) left "flying" apart from "flies"; Snowball joins them
    assert stem("flying") != stem("flies")
    assert found("en", "flying") == {"uni.txt"}


def test_japanese_is_analysed_as_before() -> None:
    assert DEFAULT_ANALYZER.index_tokens(TSUYU) == LEGACY_ANALYZER.index_tokens(TSUYU)
    assert DEFAULT_ANALYZER.index_tokens(TSUYU) == tokenize(TSUYU)
    assert DEFAULT_ANALYZER.query_tokens(TSUYU) == tokenize_query(TSUYU)
    # Latin words inside Japanese text get the collection's English stemmer
    assert "fli" in DEFAULT_ANALYZER.index_tokens("国際連合 flying")
    assert "fly" in LEGACY_ANALYZER.index_tokens("国際連合 flying")


def _made_before_0030(name: str, docs: dict[str, str]) -> None:
    """A collection as keizoku wrote it before decision 0030: Porter tokens, no analyzer."""
    db = connect(name, create=True)
    db.begin_write()
    vecs = {}
    for source, text in docs.items():
        doc = db.add_doc(source, source, "text", "sha-" + source, "[]", '["group:everyone"]',
                         "2026-11-01T00:00:00Z")  # fmt: skip
        db.write_acl(doc, ("group:everyone",))
        tokens = LEGACY_ANALYZER.index_tokens(_index_text(source, (), text))
        vecs[db.add_chunk(doc, 0, "[]", text, " ".join(tokens))] = np.zeros(0, np.float32)
    _build_generation(db, name, 0, vecs, 0)
    db.publish(0)
    db.set_meta("generation", "0")
    db.set_meta("model", "none")
    db.set_meta("embedding", NONE.to_json())
    db.commit()
    db.close()


def test_a_collection_indexed_before_keeps_working(tmp_path: Path, write) -> None:  # type: ignore[no-untyped-def]
    assert stem("generous") != DEFAULT_ANALYZER.query_tokens("generous")[0]  # they differ here
    docs = tmp_path / "docs"
    write(docs / "gift.txt", "Generous donors built the museum.")
    write(docs / "open.txt", "The museum opened in 1901.")
    inputs, _ = file_inputs([docs], ["group:everyone"])
    _made_before_0030("old", {i.source: Path(i.source).read_text() for i in inputs})
    assert collection_info("old")["english_stemmer"] == "porter"
    assert found("old", "generous") == {"gift.txt"}  # the query is stemmed as the index was
    # an incremental ingest keeps Porter (and now records it)
    write(docs / "library.txt", "A generously funded library.")
    ingest("old", *file_inputs([docs], ["group:everyone"]))
    assert collection_info("old")["english_stemmer"] == "porter"
    assert found("old", "generous") == {"gift.txt", "library.txt"}
    # a --rebuild of part of it keeps Porter: one index never mixes two stemmers
    report = ingest("old", *file_inputs([docs / "library.txt"], ["group:everyone"]), rebuild=True)
    assert collection_info("old")["english_stemmer"] == "porter"
    assert report.notes == [
        f"2 document(s) of 'old' are outside this ingest (e.g. {docs / 'gift.txt'}), so the "
        "collection keeps English stemmer 'porter'. Re-ingest all of its documents with "
        "--rebuild to move it to 'porter2'."
    ]
    assert found("old", "generous") == {"gift.txt", "library.txt"}
    # a --rebuild of all of it moves it to the current analyzer
    ingest("old", *file_inputs([docs], ["group:everyone"]), rebuild=True)
    assert collection_info("old")["english_stemmer"] == "porter2"
    assert collection_info("old")["documents"] == 3
    assert found("old", "generous") == {"gift.txt", "library.txt"}


def test_an_unknown_recorded_analyzer_is_refused_with_the_fix(tmp_path: Path, write) -> None:  # type: ignore[no-untyped-def]
    write(tmp_path / "docs" / "a.txt", "Deploys happen on Tuesdays.")
    ingest("en", *file_inputs([tmp_path / "docs"], ["group:everyone"]), embedding=NONE)
    db = connect("en")
    db.begin_write()
    db.set_meta("analyzer", json.dumps({"english": "lancaster"}))
    db.commit()
    db.close()
    with pytest.raises(UserInputError) as err:
        search("en", "deploys", EVERYONE, fusion=LEXICAL)
    assert str(err.value) == (
        "Collection 'en' was indexed with English stemmer 'lancaster', which this keizoku does "
        "not know (it has porter, porter2). Upgrade keizoku, or re-ingest with 'keizoku rag "
        "ingest PATH --collection en --rebuild'."
    )
    # the fix works: a --rebuild of all its documents records the current analyzer
    ingest("en", *file_inputs([tmp_path / "docs"], ["group:everyone"]), rebuild=True)
    assert found("en", "deploys") == {"a.txt"}
    assert collection_info("en")["english_stemmer"] == "porter2"
    assert Analyzer.from_json(Analyzer("porter").to_json(), "x") == LEGACY_ANALYZER
