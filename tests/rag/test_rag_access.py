"""The ACL boundary, planted: no user ever sees a document outside their rights."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from keizoku.errors import UserInputError
from keizoku.rag.access import Identity, normalize_principal
from keizoku.rag.answer import ask
from keizoku.rag.collection import file_inputs, ingest, list_docs, search, set_acl
from keizoku.rag.index import FusionConfig
from kzsupport import KEIZOKU_EXE

TOPICS = ["salary", "vacation", "deployment", "security", "budget", "hiring"]
GROUPS = ["hr", "eng", "finance", "legal"]
USERS = {
    "alice": ("hr",), "bob": ("eng",), "carol": ("finance", "eng"), "dave": (),
    "erin": ("legal",), "frank": ("hr", "finance", "legal"),
}  # fmt: skip
MODES = [FusionConfig(mode="hybrid"), FusionConfig(mode="lexical"), FusionConfig(mode="dense")]


def secret(i: int) -> str:
    return f"zorblax{i:02d}"


def build_corpus(root: Path, write) -> dict[str, tuple[str, ...]]:  # type: ignore[no-untyped-def]
    """18 documents with a unique secret word each and a random mix of access entries."""
    rng = random.Random(7)
    acls: dict[str, tuple[str, ...]] = {}
    for i in range(18):
        topic = TOPICS[i % len(TOPICS)]
        entries = sorted(
            {f"group:{g}" for g in rng.sample(GROUPS, rng.randint(0, 2))}
            | ({f"user:{rng.choice(list(USERS))}"} if rng.random() < 0.4 else set())
        )
        if not entries:
            entries = ["user:nobody"]
        name = f"doc{i:02d}.md"
        body = (
            f"# {topic.title()} policy {i}\n\n## Details\n\nThe {topic} rule code is {secret(i)}. "
            f"Every question about {topic} is answered here. Contact the {topic} team.\n"
        )
        if i % 3 == 0:  # front matter
            write(root / name, f"---\nallow: [{', '.join(entries)}]\n---\n{body}")
        elif i % 3 == 1:  # sidecar .acl
            write(root / name, body)
            write(root / f"{name}.acl", "\n".join(entries) + "\n")
        else:  # sidecar meta.yaml
            write(root / name, body)
            write(root / f"{name}.meta.yaml", f"allow: [{', '.join(entries)}]\n")
        acls[str((root / name).resolve())] = tuple(entries)
    return acls


def visible(acls: dict[str, tuple[str, ...]], who: Identity) -> set[str]:
    mine = set(who.principals())
    return {src for src, entries in acls.items() if mine.intersection(entries)}


def queries() -> list[str]:
    return [secret(i) for i in range(18)] + [f"what is the {t} rule code?" for t in TOPICS]


def check_user(name: str, acls: dict[str, tuple[str, ...]], who: Identity) -> None:
    allowed = visible(acls, who)
    forbidden_secrets = {secret(int(Path(s).stem[3:])) for s in set(acls) - allowed}
    for q in queries():
        for cfg in MODES:
            hits = search(name, q, who, k=50, fusion=cfg)
            assert {h.source for h in hits} <= allowed, (who, q, cfg.mode)
            assert len(hits) <= len(allowed)
            for h in hits:
                assert not any(s in h.text for s in forbidden_secrets)
    answer = ask(name, f"what is the {TOPICS[0]} rule code?", who)
    assert {c.source for c in answer.citations} <= allowed
    blob = str(answer.to_dict())
    assert not any(s in blob for s in forbidden_secrets)
    assert {d["source"] for d in list_docs(name, who)} == allowed


@pytest.fixture
def corpus(tmp_path: Path, write) -> dict[str, tuple[str, ...]]:  # type: ignore[no-untyped-def]
    acls = build_corpus(tmp_path / "docs", write)
    ingest("acl", *file_inputs([tmp_path / "docs"]))
    return acls


def test_every_user_sees_only_their_documents_in_every_path(corpus) -> None:  # type: ignore[no-untyped-def]
    for user, groups in USERS.items():
        check_user("acl", corpus, Identity(user, groups))
    # a user finds, through each path, the secret of a document they may see
    frank = Identity("frank", USERS["frank"])
    mine = sorted(visible(corpus, frank))[0]
    for cfg in MODES:
        hits = search("acl", secret(int(Path(mine).stem[3:])), frank, k=3, fusion=cfg)
        assert mine in {h.source for h in hits}


def test_missing_identity_sees_nothing(corpus) -> None:  # type: ignore[no-untyped-def]
    for q in queries():
        for cfg in MODES:
            assert search("acl", q, Identity.anonymous(), fusion=cfg) == []
            assert search("acl", q, Identity(None, ("hr", "eng")), fusion=cfg) == []
    answer = ask("acl", "what is the salary rule code?", Identity.anonymous())
    assert answer.citations == [] and answer.hits == []
    assert "zorblax" not in answer.answer


def test_scores_do_not_depend_on_forbidden_documents(tmp_path: Path, write) -> None:  # type: ignore[no-untyped-def]
    """Same results and scores whether the forbidden documents exist or not."""
    acls = build_corpus(tmp_path / "all", write)
    who = Identity("bob", USERS["bob"])
    allowed = visible(acls, who)
    ingest("full", *file_inputs([tmp_path / "all"]))
    mine = [Path(s) for s in sorted(allowed)]
    ingest("mine", *file_inputs(mine))
    for q in queries()[:10] + queries()[-3:]:
        for cfg in MODES:
            a = [(Path(h.source).name, round(h.score, 5)) for h in search("full", q, who, 20, cfg)]
            b = [(Path(h.source).name, round(h.score, 5)) for h in search("mine", q, who, 20, cfg)]
            assert a == b, (q, cfg.mode)


def test_access_change_takes_effect_on_next_query(corpus, tmp_path: Path, write) -> None:  # type: ignore[no-untyped-def]
    dave = Identity("dave", ())
    target = next(s for s, e in corpus.items() if "user:dave" not in e)
    code = secret(int(Path(target).stem[3:]))
    assert all(h.source != target for h in search("acl", code, dave, k=50))
    set_acl("acl", target, ["user:dave"])
    assert search("acl", code, dave, k=1, fusion=MODES[1])[0].source == target
    assert any(h.source == target for h in search("acl", code, dave, k=50, fusion=MODES[2]))
    set_acl("acl", target, ["group:legal"])
    assert all(h.source != target for h in search("acl", code, dave, k=50))
    # re-ingest with a new sidecar (content unchanged): the new list applies at once
    set_acl("acl", target, None)
    path = Path(target)
    for side in (path.with_name(path.name + ".acl"), path.with_name(path.name + ".meta.yaml")):
        side.unlink(missing_ok=True)
    text = path.read_text()
    if text.startswith("---"):
        text = text.split("---\n", 2)[2]
    write(path, text)
    write(path.with_name(path.name + ".acl"), "user:dave\n")
    report = ingest("acl", *file_inputs([tmp_path / "docs"]))
    assert report.removed == []
    assert any(h.source == target for h in search("acl", code, dave, k=50))
    write(path.with_name(path.name + ".acl"), "group:finance\n")
    report = ingest("acl", *file_inputs([tmp_path / "docs"]))
    assert report.acl_changed == [target] and report.chunks_embedded == 0
    assert all(h.source != target for h in search("acl", code, dave, k=50))
    assert any(h.source == target for h in search("acl", code, Identity("x", ("finance",)), 50))


def test_a_change_by_another_process_applies_to_kept_readers(corpus, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Searches keep a read connection per thread and cache the allowed rows on it: a
    change committed by another process (the real CLI) must still apply at the next query,
    in this thread and in another one; a replaced database file is reopened."""
    dave = Identity("dave", ())
    target = next(s for s, e in corpus.items() if "user:dave" not in e)
    code = secret(int(Path(target).stem[3:]))

    def seen() -> bool:
        return any(h.source == target for h in search("acl", code, dave, k=50))

    def seen_elsewhere() -> bool:
        out: list[bool] = []
        worker = threading.Thread(target=lambda: out.append(seen()))
        worker.start()
        worker.join()
        return out[0]

    assert not seen() and not seen_elsewhere()  # both threads now keep a reader
    cli = [KEIZOKU_EXE, "rag", "acl", "set", target, "--collection", "acl"]
    env = dict(os.environ)
    subprocess.run([*cli, "--allow", "user:dave"], check=True, env=env, capture_output=True)
    assert seen() and seen_elsewhere()
    subprocess.run([*cli, "--allow", "group:legal"], check=True, env=env, capture_output=True)
    assert not seen() and not seen_elsewhere()
    # the collection deleted and ingested again (a new database file), dave now listed
    shutil.rmtree(Path(os.environ["KEIZOKU_HOME"]) / "rag" / "acl")
    ingest("acl", *file_inputs([tmp_path / "docs"], allow=["user:dave"]))
    assert seen()


def test_everyone_group_needs_an_identity(tmp_path: Path, write) -> None:  # type: ignore[no-untyped-def]
    text = "---\nallow: [group:everyone]\n---\n# Open\n\nCafe hours 9-5."
    write(tmp_path / "d" / "open.md", text)
    ingest("open", *file_inputs([tmp_path / "d"]))
    assert search("open", "cafe hours", Identity("anyone", ()))
    assert search("open", "cafe hours", Identity.anonymous()) == []


def test_bad_access_entry_names_the_fix() -> None:
    with pytest.raises(UserInputError) as err:
        normalize_principal("admins")
    assert err.value.message == (
        "Access entry 'admins' is not valid. Write 'user:NAME' or 'group:NAME' (letters, digits, "
        "'_', '.', '@', '+', '-'), e.g. --allow group:hr --allow user:alice."
    )
