"""Late interaction (decision 0030, s11): token states stored at ingest, dense feedback and a
MaxSim rerank in hybrid search, the access filter kept, collections without token states
still answering, and a collection that opts out of them (storage)."""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from keizoku.errors import UserInputError
from keizoku.rag.access import Identity
from keizoku.rag.collection import DEFAULT_FUSION, collection_info, file_inputs, ingest, search
from keizoku.rag.config import load_rag_config
from keizoku.rag.embed import Embedder, EmbeddingConfig
from keizoku.rag.index import DenseIndex, FusionConfig, TokenIndex, late_interaction
from keizoku.rag.store import connect, generation_dir
from kzsupport import KEIZOKU_EXE

EVERYONE = Identity("u", ("everyone",))
NO_RERANK = FusionConfig(alpha=0.7, neighbour=0.3, rerank=False)


def _unit(rows: list[list[float]]) -> np.ndarray:
    x = np.asarray(rows, dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _sources(name: str, query: str, who: Identity, fusion: FusionConfig | None = None) -> list[str]:
    return [Path(h.source).name for h in search(name, query, who, k=10, fusion=fusion)]


def _generation(name: str) -> Path:
    db = connect(name)
    try:
        return generation_dir(db, int(db.meta("generation") or 0))
    finally:
        db.close()


def test_maxsim_rewards_a_chunk_that_matches_every_query_token() -> None:
    query = _unit([[1, 0, 0, 0], [0, 1, 0, 0]])
    both = _unit([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]])  # each query token has its match
    one = _unit([[1, 0, 0, 0], [1, 0, 0, 0], [0, 0, 1, 0]])  # only the first one does
    none = _unit([[0, 0, 1, 0], [0, 0, 0, 1]])
    tokens = TokenIndex.build([one, none, both], 4)
    scores = tokens.maxsim(query, np.array([0, 1, 2]))
    assert scores[2] > scores[0] > scores[1]
    assert np.isclose(scores[2], 1.0, atol=1e-3)  # float16 storage
    assert tokens.maxsim(query, np.array([2, 0])).tolist() == scores[[2, 0]].tolist()


def test_the_rerank_reorders_its_top_k_and_keeps_the_rest_below() -> None:
    """Equal fused scores: the chunk whose tokens match the query's goes first; a chunk
    outside the rerank depth stays below every reranked one."""
    vectors = _unit([[1, 0, 0, 0]] * 30)
    dense = DenseIndex.build(vectors)
    query = _unit([[0, 1, 0, 0]])
    blocks = [_unit([[0, 0, 1, 0]]) for _ in range(30)]
    blocks[7] = _unit([[0, 1, 0, 0]])  # the phrase-level match
    tokens = TokenIndex.build(blocks, 4)
    fused = np.full(30, 0.5, dtype=np.float32)
    fused[0] = 0.6
    fused[25] = 0.49  # just below the top 20
    allowed = np.arange(30)
    out = late_interaction(fused, allowed, lambda _: fused, dense, tokens, vectors[0], query)
    order = np.argsort(-out, kind="stable").tolist()
    assert order[0] == 7
    assert order.index(25) >= 20


def test_ingest_stores_token_states_and_the_rerank_stays_inside_the_access_list(
    tmp_path: Path,
    write,  # type: ignore[no-untyped-def]
) -> None:
    hr, eng = tmp_path / "hr", tmp_path / "eng"
    write(hr / "pay.txt", "Salary bands for the payroll office are revised every April.")
    write(hr / "leave.txt", "Parental leave lasts sixteen weeks at full salary.")
    write(eng / "deploy.txt", "Deployments to production happen on Tuesdays after review.")
    write(eng / "oncall.txt", "The on-call engineer answers pages within fifteen minutes.")
    ingest("co", *file_inputs([hr], ["group:hr"]))
    ingest("co", *file_inputs([eng], ["group:eng"]))  # its own scope: hr stays
    assert collection_info("co")["late_interaction"] is True
    folder = _generation("co")
    offsets = np.load(folder / "token_offsets.npy")
    assert len(offsets) == 5 and np.all(np.diff(offsets) > 0)  # 4 chunks, each with states
    engineer, payroll = Identity("bob", ("eng",)), Identity("alice", ("hr",))
    for query in ("What are the salary bands in payroll?", "When do deployments happen?"):
        assert set(_sources("co", query, engineer)) <= {"deploy.txt", "oncall.txt"}
        assert set(_sources("co", query, payroll)) <= {"pay.txt", "leave.txt"}
    assert _sources("co", "When do deployments happen?", engineer)[0] == "deploy.txt"
    assert _sources("co", "How long is parental leave?", payroll)[0] == "leave.txt"
    assert _sources("co", "salary", Identity("dave", ())) == []


def test_a_collection_without_token_states_still_answers(tmp_path: Path, write) -> None:  # type: ignore[no-untyped-def]
    """As one indexed before s11: no token files. Search answers as before (no rerank), an
    incremental ingest cannot give the old chunks states, a --rebuild does."""
    docs = tmp_path / "docs"
    write(docs / "mill.txt", "The old mill on the river grinds wheat into flour.")
    write(docs / "bridge.txt", "A stone bridge crosses the river near the mill.")
    ingest("old", *file_inputs([docs], ["group:everyone"]))
    for name in ("tokens.npy", "token_offsets.npy"):
        (_generation("old") / name).unlink()
    from keizoku.rag import collection as col

    col._GEN_CACHE.clear()
    assert collection_info("old")["late_interaction"] is False
    query = "What does the mill grind?"
    assert _sources("old", query, EVERYONE) == _sources("old", query, EVERYONE, NO_RERANK)
    assert _sources("old", query, EVERYONE)[0] == "mill.txt"
    write(docs / "road.txt", "The road to the mill was paved in 1920.")
    report = ingest("old", *file_inputs([docs], ["group:everyone"]))
    assert collection_info("old")["late_interaction"] is False
    assert any("--rebuild to store them" in n for n in report.notes), report.notes
    assert "road.txt" in _sources("old", "When was the road paved?", EVERYONE)
    ingest("old", *file_inputs([docs], ["group:everyone"]), rebuild=True)
    assert collection_info("old")["late_interaction"] is True
    assert _sources("old", query, EVERYONE)[0] == "mill.txt"


def test_an_embedding_server_collection_has_no_token_states(
    tmp_path: Path,
    write,  # type: ignore[no-untyped-def]
    stand_in,  # type: ignore[no-untyped-def]
) -> None:
    write(tmp_path / "docs" / "a.txt", "Deployments happen on Tuesdays.")
    cfg = EmbeddingConfig(backend="http", model="stand-in", url=stand_in.base)
    ingest("http", *file_inputs([tmp_path / "docs"], ["group:everyone"]), embedding=cfg)
    assert collection_info("http")["late_interaction"] is False
    assert _sources("http", "deployments", EVERYONE) == ["a.txt"]


def test_the_query_pass_gives_the_vector_and_its_token_states(embedder: Embedder) -> None:
    text = "Who founded the university of Notre Dame?"
    vectors, states = embedder.encode_with_tokens([text])
    assert np.allclose(vectors[0], embedder.encode([text])[0], atol=1e-5)
    ids = embedder.model.tokenizer(text)["input_ids"]
    assert 0 < len(states[0]) < len(ids)  # [CLS], [SEP], "the", "of", "?" left out
    assert states[0].dtype == np.float16
    assert np.allclose(np.linalg.norm(states[0].astype(np.float32), axis=1), 1.0, atol=1e-2)


# --- opting out: late_interaction off (storage control) ----------------------------------

MINILM = "local all-MiniLM-L6-v2"
TOKEN_FILES = ("token_offsets.npy", "tokens.npy")


def _keizoku(*args: str) -> subprocess.CompletedProcess[str]:
    """The real executable (KEIZOKU_HOME and PYTHONPATH from this test's environment)."""
    return subprocess.run([KEIZOKU_EXE, "rag", *args], capture_output=True, text=True,
                          timeout=300)  # fmt: skip


def _token_files(name: str) -> list[str]:
    return sorted(f for f in TOKEN_FILES if (_generation(name) / f).is_file())


def test_no_late_interaction_through_the_cli_and_back_only_with_rebuild(
    tmp_path: Path,
    write,  # type: ignore[no-untyped-def]
) -> None:
    docs = tmp_path / "docs"
    write(docs / "mill.txt", "The old mill on the river grinds wheat into flour.")
    write(docs / "bridge.txt", "A stone bridge crosses the river near the mill.")
    common = (str(docs), "-C", "big", "--allow", "group:everyone")
    done = _keizoku("ingest", *common, "--no-late-interaction", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["embedding"] == f"{MINILM} (late interaction off)"
    assert _token_files("big") == []
    info = json.loads(_keizoku("info", "-C", "big", "--json").stdout)
    assert info["late_interaction"] is False
    assert info["embedding"] == f"{MINILM} (late interaction off)"

    refused = _keizoku("ingest", *common, "--late-interaction")
    assert refused.returncode == 2
    assert refused.stderr == (
        f"Error: Collection 'big' embeds with {MINILM} (late interaction off), not {MINILM}. "
        "Re-ingest with --rebuild to change it, or ingest into a new collection.\n"
    )
    assert _token_files("big") == []

    done = _keizoku("ingest", *common, "--late-interaction", "--rebuild", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["embedding"] == MINILM
    assert _token_files("big") == list(TOKEN_FILES)
    info = json.loads(_keizoku("info", "-C", "big", "--json").stdout)
    assert info["late_interaction"] is True and info["embedding"] == MINILM


def test_without_late_interaction_a_search_is_the_plain_hybrid(tmp_path: Path, write) -> None:  # type: ignore[no-untyped-def]
    """Off: the same ranking and scores as the hybrid without feedback and rerank, kept by
    incremental ingests and by a --rebuild that does not ask otherwise; turning an "on"
    collection off is refused without --rebuild too."""
    docs = tmp_path / "docs"
    write(docs / "mill.txt", "The old mill on the river grinds wheat into flour.")
    write(docs / "bridge.txt", "A stone bridge crosses the river near the mill.")
    write(docs / "bakery.txt", "The bakery buys its flour from the mill every Monday.")
    inputs = file_inputs([docs], ["group:everyone"])
    ingest("off", *inputs, late_interaction=False)
    ingest("on", *inputs)
    plain = replace(DEFAULT_FUSION, rerank=False)
    for query in ("What does the mill grind?", "Who buys flour?", "stone bridge"):
        off = search("off", query, EVERYONE, k=10)
        assert [h.to_dict() for h in off] == [
            h.to_dict() for h in search("off", query, EVERYONE, k=10, fusion=plain)
        ]
        on = search("on", query, EVERYONE, k=10, fusion=plain)
        assert [h.source for h in off] == [h.source for h in on]
        assert np.allclose([h.score for h in off], [h.score for h in on], atol=1e-4)

    write(docs / "road.txt", "The road to the mill was paved in 1920.")
    report = ingest("off", *file_inputs([docs], ["group:everyone"]))
    assert report.embedding == f"{MINILM} (late interaction off)" and _token_files("off") == []
    ingest("off", *file_inputs([docs], ["group:everyone"]), rebuild=True)
    assert _token_files("off") == [] and collection_info("off")["late_interaction"] is False

    with pytest.raises(UserInputError) as err:
        ingest("on", *file_inputs([docs], ["group:everyone"]), late_interaction=False)
    assert err.value.message == (
        f"Collection 'on' embeds with {MINILM}, not {MINILM} (late interaction off). Re-ingest "
        "with --rebuild to change it, or ingest into a new collection."
    )
    ingest("on", *file_inputs([docs], ["group:everyone"]), rebuild=True, late_interaction=False)
    assert _token_files("on") == [] and collection_info("on")["late_interaction"] is False


def test_late_interaction_in_the_collection_config(tmp_path: Path, write, stand_in) -> None:  # type: ignore[no-untyped-def]
    """``embeddings.late_interaction`` in a -c file (under ``rag:``); true/false only; an
    embedding server's collection has none, so the setting changes nothing there."""
    write(tmp_path / "docs" / "a.txt", "Deployments happen on Tuesdays.")
    inputs = file_inputs([tmp_path / "docs"], ["group:everyone"])
    off = write(tmp_path / "off.yaml", "rag:\n  embeddings:\n    late_interaction: false\n")
    emb = load_rag_config(off).embedding
    assert emb == EmbeddingConfig(late_interaction=False)
    ingest("cfg", *inputs, embedding=emb)
    assert _token_files("cfg") == [] and collection_info("cfg")["late_interaction"] is False

    bad = write(tmp_path / "bad.yaml", "embeddings:\n  late_interaction: 'no'\n")
    with pytest.raises(UserInputError) as err:
        load_rag_config(bad)
    assert err.value.message == (
        "embeddings.late_interaction 'no' is not true or false. Write late_interaction: false "
        "to store no token states."
    )

    http = EmbeddingConfig(backend="http", model="stand-in", url=stand_in.base)
    assert replace(http, late_interaction=True) == http and not http.late_interaction
    ingest("http", *inputs, embedding=http)
    report = ingest("http", *inputs, late_interaction=False)  # nothing to turn off: accepted
    assert report.embedding == f"http stand-in at {stand_in.base}"
    ingest("http", *inputs, late_interaction=True)
    assert collection_info("http")["late_interaction"] is False
