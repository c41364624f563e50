"""Every state store through the same checks: the embedded one, and PostgreSQL.

``KEIZOKU_STORE`` picks the store as users pick it: unset for the embedded store (files and
SQLite under ``KEIZOKU_HOME``), a ``postgresql://`` URL for a real server started by
``tests/pgsupport.py`` (one database per test). Each primitive (documents, streams,
chained streams, locks, keys and users) and each module ported onto it (auth, the audit
chain, heartbeats, deployments, experiments) must behave the same on both; locks and
chains are checked across real processes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from keizoku import audit, auth
from keizoku.errors import AuthError, ConflictError, IntegrityError, NotFoundError, UserInputError
from keizoku.lifecycle import deployment, experiments, servers
from keizoku.store import Store, store_from_env
from keizoku.store.base import KeyRow
from pgsupport import Postgres, postgres  # noqa: F401 (the fixture)

STORES = ("embedded", "postgresql")
WRITERS, EACH = 4, 10  # processes appending to one chain at once, entries each


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    """A fresh, empty store of each kind; KEIZOKU_HOME is this test's own."""
    monkeypatch.setenv("KEIZOKU_HOME", str(tmp_path / ".keizoku"))
    monkeypatch.delenv("KEIZOKU_TRACKING_URI", raising=False)
    if request.param == "embedded":
        monkeypatch.delenv("KEIZOKU_STORE", raising=False)
    else:
        pg: Postgres = request.getfixturevalue("postgres")
        monkeypatch.setenv("KEIZOKU_STORE", pg.database())
    found = store_from_env()
    assert found.kind == request.param
    return found


def _python(code: str, *args: str) -> subprocess.Popen[str]:
    """A separate Python process running ``code`` with this test's environment."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _finish(proc: subprocess.Popen[str], timeout: float = 120) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return out


def _tamper(store: Store, stream: str, number: int, old: str, new: str) -> None:
    """Edit line ``number`` (1-based) of a stream behind keizoku's back."""
    if store.kind == "embedded":
        path = Path(store.where(stream))
        lines = path.read_text().splitlines(keepends=True)
        assert old in lines[number - 1]
        lines[number - 1] = lines[number - 1].replace(old, new)
        path.write_text("".join(lines))
        return
    import psycopg

    with psycopg.connect(os.environ["KEIZOKU_STORE"], autocommit=True) as conn:
        cur = conn.execute(
            "UPDATE keizoku_store.lines SET line=replace(line, %s, %s) WHERE stream=%s AND seq=%s",
            (old, new, stream, number),
        )
        assert cur.rowcount == 1


# ------------------------------------------------------------------ primitives


def test_documents(store: Store) -> None:
    assert store.get("deployments", "a") is None and store.stamp("deployments", "a") == 0.0
    store.put("deployments", "a", {"x": 1, "nested": {"y": [1, 2]}})
    first = store.stamp("deployments", "a")
    assert store.get("deployments", "a") == {"x": 1, "nested": {"y": [1, 2]}} and first > 0
    time.sleep(0.01)
    store.put("deployments", "a", {"x": 2})
    assert store.get("deployments", "a") == {"x": 2}
    assert store.stamp("deployments", "a") != first
    store.put("experiments", "m/e1", {"id": "e1"})
    store.put("experiments", "m/e2", {"id": "e2"})
    store.put("experiments", "m2/e3", {"id": "e3"})
    assert [k for k, _ in store.documents("experiments", "m/")] == ["m/e1", "m/e2"]
    assert len(store.documents("experiments")) == 3
    assert store.delete("deployments", "a") and not store.delete("deployments", "a")
    assert store.get("deployments", "a") is None and store.stamp("deployments", "a") == 0.0
    with pytest.raises(UserInputError, match="not a plain relative name"):
        store.put("deployments", "../escape", {})


def test_streams_plain_and_chained(store: Store) -> None:
    assert store.lines("rag/audit/audit") == [] and store.head("audit/m") is None
    store.append("rag/audit/audit", '{"q": "日本語"}')
    store.append("rag/audit/audit", '{"q": 2}')
    assert store.lines("rag/audit/audit") == ['{"q": "日本語"}', '{"q": 2}']
    seen: list[str] = []

    def build(i: int) -> Callable[[str], str]:
        def line(prev: str) -> str:
            seen.append(prev)
            return f'{{"i":{i}}}'

        return line

    for i in range(3):
        store.append_chained("audit/m", build(i))
    from keizoku.store.embedded import GENESIS, line_hash

    lines = store.lines("audit/m")
    assert lines == ['{"i":0}', '{"i":1}', '{"i":2}']
    assert seen == [GENESIS, line_hash(lines[0]), line_hash(lines[1])]
    assert store.head("audit/m") == (3, line_hash(lines[2]))


_HOLD = """
import sys, time
from keizoku.store import store_from_env
with store_from_env().lock(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.readline()
"""


def test_a_lock_is_exclusive_across_processes(store: Store) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, "deployments/m.lock"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with (
            pytest.raises(ConflictError, match="held the lock"),
            store.lock("deployments/m.lock", wait_s=0.3),
        ):
            pass
        with store.lock("deployments/other.lock", wait_s=0.3):
            pass  # another name is another lock
    finally:
        holder.communicate("\n", timeout=60)
    assert holder.returncode == 0
    with store.lock("deployments/m.lock", wait_s=5):
        pass  # released by the holder


def test_keys_and_users_primitives(store: Store) -> None:
    row = KeyRow("k1", "predict", "alice", "a" * 64, "2026-01-01T00:00:00+00:00", False)
    assert not store.has_active_key()
    assert store.add_key(row) and not store.add_key(row)
    assert store.keys() == [row] and store.key_by_hash("a" * 64) == row
    assert store.key_by_hash("b" * 64) is None and store.has_active_key()
    assert store.revoke_key("k1") and not store.revoke_key("nope")
    assert not store.has_active_key() and store.keys()[0].revoked
    assert store.groups("alice") is None
    store.set_groups("alice", ["hr", "eng"], "t1")
    store.set_groups("alice", ["hr"], "t2")
    assert store.groups("alice") == ["hr"] and store.users() == [("alice", ["hr"], "t2")]


# ------------------------------------------------------------------ ported modules


def test_keys_create_authenticate_revoke(store: Store) -> None:
    assert not auth.keys_configured()
    token = auth.create_key("ci", "admin", user="bob")
    auth.set_user_groups("bob", ["ops"])
    principal = auth.authenticate(token)
    assert (principal.key_name, principal.role, principal.groups) == ("ci", "admin", ("ops",))
    with pytest.raises(UserInputError, match="already exists"):
        auth.create_key("ci", "predict")
    assert [k["name"] for k in auth.list_keys()] == ["ci"] and auth.keys_configured()
    auth.revoke_key("ci")
    with pytest.raises(AuthError, match="was revoked"):
        auth.authenticate(token)
    with pytest.raises(AuthError, match="not valid"):
        auth.authenticate(token + "x")
    with pytest.raises(NotFoundError):
        auth.revoke_key("nobody")
    assert [e["action"] for e in audit.read(audit.KEYS)] == ["key_create", "key_revoke"]
    assert audit.verify(audit.KEYS) == 2
    assert all(token not in str(e) for e in audit.read(audit.KEYS))


def test_audit_chain_verifies_and_finds_tampering(store: Store) -> None:
    for version in (1, 2, 3):
        audit.record("churn", "promote", actor="alice", version=version, reason="ok")
    assert [e["version"] for e in audit.read("churn", ("promote",))] == [1, 2, 3]
    assert audit.verify("churn") == 3 and audit.verify("other") == 0
    _tamper(store, "audit/churn", 2, '"actor":"alice"', '"actor":"mallory"')
    with pytest.raises(IntegrityError, match="entry 3 .* does not follow entry 2"):
        audit.verify("churn")
    _tamper(store, "audit/churn", 2, '"actor":"mallory"', '"actor":"alice"')
    assert audit.verify("churn") == 3
    _tamper(store, "audit/churn", 3, '"reason":"ok"', '"reason":"no"')
    with pytest.raises(IntegrityError, match=r"entry 3 \(the last\) does not match the head"):
        audit.verify("churn")


_APPEND = """
import sys
from keizoku import audit
for i in range(int(sys.argv[2])):
    audit.record("churn", "retrain", actor=f"w{sys.argv[1]}", version=i)
"""


def test_appends_from_several_processes_keep_one_chain(store: Store) -> None:
    audit.record("churn", "register", version=0)  # the schema/folder exists before the race
    procs = [_python(_APPEND, str(w), str(EACH)) for w in range(WRITERS)]
    for proc in procs:
        _finish(proc)
    assert audit.verify("churn") == 1 + WRITERS * EACH
    entries = audit.read("churn", ("retrain",))
    for w in range(WRITERS):
        assert [e["version"] for e in entries if e["actor"] == f"w{w}"] == list(range(EACH))


def test_heartbeats(store: Store) -> None:
    from keizoku.serving.state import ModelSet

    assert servers.live_beats() == []
    servers.write_beat(ModelSet(), port=8000, bind="127.0.0.1", started=time.time(),
                       interval_s=5.0)  # fmt: skip
    beats = servers.live_beats()
    assert [(b.pid, b.port, b.models) for b in beats] == [(os.getpid(), 8000, {})]
    stale = {**beats[0].to_dict(), "pid": 1, "host": "elsewhere", "beat": time.time() - 60}
    stale.pop("label")
    store.put("servers", "elsewhere-1", stale)
    assert [b.host for b in servers.live_beats()] == [beats[0].host]  # stale: not live
    assert len(store.documents("servers")) == 2
    servers.live_beats(prune=True)
    assert [k for k, _ in store.documents("servers")] == [servers._beat_key()]
    servers.remove_beat()
    assert servers.live_beats() == []


def test_deployments(store: Store) -> None:
    assert deployment.load_deployment("churn").is_default
    assert deployment.deployment_stamp("churn") == 0.0
    dep = deployment.Deployment(split={"champion": 90, "challenger": 10}, sticky_key="id",
                                versions={"champion": 1, "challenger": 2})  # fmt: skip
    deployment.save_deployment("churn", dep)
    assert deployment.load_deployment("churn") == dep
    stamp = deployment.deployment_stamp("churn")
    assert stamp > 0
    time.sleep(0.01)
    deployment.save_deployment("churn", dep.model_copy(update={"shadow": "challenger"}))
    assert deployment.deployment_stamp("churn") != stamp
    assert deployment.load_deployment("churn").shadow == "challenger"
    deployment.reset_deployment("churn")
    assert deployment.load_deployment("churn").is_default
    store.put("deployments", "bad", {"split": {"champion": -1}})
    with pytest.raises(UserInputError, match="deploy bad --reset"):
        deployment.load_deployment("bad")
    with pytest.raises(UserInputError):
        deployment.save_deployment("../x", dep)


def test_experiments(store: Store) -> None:
    def make(exp_id: str, started: float) -> experiments.Experiment:
        return experiments.Experiment(
            id=exp_id, model="churn", kind="split", started=started,
            control=experiments.Arm(alias="champion", version=1),
            treatment=experiments.Arm(alias="challenger", version=2),
            split={"champion": 50, "challenger": 50},
        )  # fmt: skip

    assert experiments.list_experiments("churn") == []
    second, first = make("ab-2", 2.0), make("ab-1", 1.0)
    experiments.save_experiment(second)
    experiments.save_experiment(first)
    experiments.save_experiment(make("ab-9", 3.0).model_copy(update={"model": "churn2"}))
    assert experiments.load_experiment("churn", "ab-1") == first
    assert [e.id for e in experiments.list_experiments("churn")] == ["ab-1", "ab-2"]
    ended = experiments.end_experiment(first, "ended", "enough")
    assert experiments.load_experiment("churn", "ab-1") == ended and ended.status == "ended"
    with pytest.raises(NotFoundError, match="has no experiment 'ab-3'"):
        experiments.load_experiment("churn", "ab-3")


def test_store_urls_are_redacted_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    from keizoku.store import parse_store_url, redact, tracking_uri

    assert redact("postgresql://u:pw@h:5/db?sslmode=require&password=pw2") == (
        "postgresql://u@h:5/db?sslmode=require&password=%2A%2A%2A"
    )
    assert redact("sqlite:////tmp/x/mlflow.db") == "sqlite:////tmp/x/mlflow.db"
    assert parse_store_url("postgres://u:pw@h/db") == "postgresql://u:pw@h/db"
    monkeypatch.setenv("KEIZOKU_STORE", "postgres://u:pw@h:5/db")
    monkeypatch.delenv("KEIZOKU_TRACKING_URI", raising=False)
    assert tracking_uri() == "postgresql+psycopg://u:pw@h:5/db"
    from keizoku.home import mlflow_uri

    assert mlflow_uri() == tracking_uri()
    monkeypatch.setenv("KEIZOKU_TRACKING_URI", "sqlite:////elsewhere/mlflow.db")
    assert mlflow_uri() == "sqlite:////elsewhere/mlflow.db"  # the explicit URI wins
    monkeypatch.setenv("KEIZOKU_STORE", "embedded")
    assert tracking_uri() is None and store_from_env().kind == "embedded"


# ------------------------------------------------------------------ the console's secret

_SIGN = """
from starlette.responses import Response
from keizoku.auth import Principal
from keizoku.console.session import SESSION, sign_in
response = Response()
sign_in(Principal("ci", "admin", None, ()), response, secure=False)
print(response.headers["set-cookie"].split(";")[0].removeprefix(SESSION + "="))
"""
_READ = """
import sys
from starlette.requests import Request
from keizoku.console.session import SESSION, read_session
for value in sys.argv[1:]:  # one line per cookie: is it a valid session here?
    cookie = f"{SESSION}={value}".encode()
    print(read_session(Request({"type": "http", "headers": [(b"cookie", cookie)]})) is not None)
"""


def _in_home(code: str, home: Path, *args: str) -> str:
    """``code`` in a separate process whose home is ``home`` (same store)."""
    env = {**os.environ, "KEIZOKU_HOME": str(home)}
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_console_session_signed_by_one_server_is_valid_on_another(
    store: Store, tmp_path: Path
) -> None:
    """Two homes (two servers) on one store: with PostgreSQL they accept each other's
    sessions; embedded, each home signs with its own secret and only it accepts."""
    auth.create_key("ci", "admin")
    here, there = Path(os.environ["KEIZOKU_HOME"]), tmp_path / "other" / ".keizoku"
    cookie = _in_home(_SIGN, here)
    forged = cookie[:-1] + ("0" if cookie[-1] != "0" else "1")
    assert _in_home(_READ, here, cookie, forged).split() == ["True", "False"]
    if store.kind == "embedded":
        assert (here / "console.secret").is_file()
        assert _in_home(_READ, there, cookie) == "False"  # another home, another secret
    else:
        assert not (here / "console.secret").exists()  # nothing of it in the home
        assert _in_home(_READ, there, cookie) == "True"
        assert list(store.documents("console")) == [("secret", store.get("console", "secret"))]


# ------------------------------------------------------------------ feedback


@pytest.fixture(scope="module", params=STORES)
def penguins_on(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Path]:
    """(store, project folder): penguins trained on a fresh store of each kind."""
    from pgsupport import trained_penguins

    url = "embedded"
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres").database()
    return url, trained_penguins(tmp_path_factory.mktemp("penguins"), url)


def test_feedback_from_every_server_lands_in_the_shared_log(
    penguins_on: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Feedback is Parquet beside the predictions it labels (decision 0022, "Feedback"):
    two servers (two homes on PostgreSQL; one home embedded, as one machine) write labels
    into ``KEIZOKU_LOG_ROOT`` and the performance join reads them all, nothing in a home."""
    from keizoku.monitoring.log import PredictionLog
    from keizoku.monitoring.performance import labelled_rows
    from kzsupport import log_prediction
    from pgsupport import keizoku

    url, where = penguins_on
    shared = tmp_path / "shared-log"
    monkeypatch.setenv("KEIZOKU_LOG_ROOT", str(shared))
    monkeypatch.setenv("KEIZOKU_HOME", str(where / ".keizoku"))
    if url == "embedded":
        monkeypatch.delenv("KEIZOKU_STORE", raising=False)
        homes = [where, where]
    else:
        monkeypatch.setenv("KEIZOKU_STORE", url)
        homes = [tmp_path / "server-a", tmp_path / "server-b"]
    with PredictionLog() as log:
        for i in range(6):
            log_prediction(log, request_id=f"r{i}", ts=1e9 + i, model="penguins", version=1,
                           variant="champion", inputs={}, prediction="Adelie")  # fmt: skip
    for n, folder in enumerate(homes):
        labels = tmp_path / f"labels-{n}.csv"
        labels.write_text("request_id,label\n" + "".join(
            f"r{i},{'Adelie' if i % 2 else 'Gentoo'}\n" for i in range(n * 3, n * 3 + 3)
        ))  # fmt: skip
        sent = keizoku(folder, url, "feedback", "penguins", str(labels))
        assert sent.code == 0 and "Stored 3 labels" in sent.out, sent.text
    rows = labelled_rows("penguins").sort_values("request_id")
    assert list(rows["request_id"]) == [f"r{i}" for i in range(6)]
    assert list(rows["label"]) == ["Gentoo", "Adelie"] * 3
    assert len(list((shared / "feedback" / "penguins").glob("fb-*.parquet"))) == 2
    assert not any((f / ".keizoku" / "feedback").exists() for f in {*homes, where})


# ------------------------------------------------------------------ RAG collections

_SEARCH = """
import sys
from keizoku.rag.access import Identity
from keizoku.rag.collection import search
for line in sys.stdin:  # a query per line, "TEXT USER": the sources it finds, one line
    text, user = line.split()
    hits = search("docs", text, Identity(user, ()), k=10)
    print(",".join(sorted({h.source.rsplit("/", 1)[-1] for h in hits})), flush=True)
"""


class _OtherServer:
    """``_SEARCH`` in a separate process whose home is ``home``, kept running: each
    ``ask`` is its next query (its kept reader, as a second server's)."""

    def __init__(self, home: Path) -> None:
        env = {**os.environ, "KEIZOKU_HOME": str(home)}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(_SEARCH)], env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip

    def ask(self, text: str, user: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{text} {user}\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        assert answer, self.proc.communicate(timeout=60)[1]  # it died: say why
        return answer.strip()

    def close(self) -> str:
        """Its stdin closes, it ends; what it said on stderr."""
        if self.proc.returncode is not None:  # ``ask`` found it dead and said why
            return ""
        return str(self.proc.communicate(timeout=60)[1])


def test_rag_access_changes_apply_at_the_next_query_on_every_server(
    store: Store, tmp_path: Path
) -> None:
    """A collection's documents, chunks and access lists in the store: an access change
    made by another process (the real CLI) applies at this process's next query (its kept
    reader) and, on PostgreSQL, at a second server's (another home), as the same decision."""
    from keizoku.rag.access import Identity
    from keizoku.rag.collection import file_inputs, ingest, list_docs, search
    from keizoku.rag.embed import EmbeddingConfig
    from keizoku.rag.store import list_collections
    from kzsupport import KEIZOKU_EXE

    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "pay.md").write_text("---\nallow: [group:hr]\n---\n# Pay\n\nSalary bands 2026.")
    (folder / "wiki.md").write_text("---\nallow: [group:everyone]\n---\n# Wiki\n\nSalary FAQ.")
    lexical = EmbeddingConfig(backend="none", model="none")
    report = ingest("docs", *file_inputs([folder]), embedding=lexical)
    assert sorted(report.added) == sorted(str(p) for p in folder.iterdir())
    assert list_collections() == ["docs"]
    dave = Identity("dave", ())

    def sources(who: Identity = dave) -> set[str]:
        return {Path(h.source).name for h in search("docs", "salary", who, k=10)}

    assert sources() == {"wiki.md"} and sources(Identity("eve", ("hr",))) == {"pay.md", "wiki.md"}
    here = Path(os.environ["KEIZOKU_HOME"])
    other = here if store.kind == "embedded" else tmp_path / "server-b" / ".keizoku"
    second = _OtherServer(other)
    try:
        assert second.ask("salary", "dave") == "wiki.md"
        env = {**os.environ, "KEIZOKU_HOME": str(other)}
        acl = [KEIZOKU_EXE, "rag", "acl", "set", str(folder / "pay.md"), "--collection", "docs"]
        for allow, seen in (("user:dave", {"pay.md", "wiki.md"}), ("group:legal", {"wiki.md"})):
            done = subprocess.run([*acl, "--allow", allow], env=env, capture_output=True,
                                  text=True)  # fmt: skip
            assert done.returncode == 0, done.stderr
            assert sources() == seen  # this process's kept reader, at its next query
            assert second.ask("salary", "dave") == ",".join(sorted(seen))  # and the other's
        listed = {Path(str(d["source"])).name: d["allow"] for d in list_docs("docs")}
        assert listed == {"pay.md": ["group:legal"], "wiki.md": ["group:everyone"]}
        (folder / "wiki.md").unlink()  # a re-ingest removes it, from every server's index
        assert ingest("docs", *file_inputs([folder]), embedding=lexical).removed
        assert sources(Identity("eve", ("legal",))) == {"pay.md"}
        assert second.ask("salary", "dave") == ""
    finally:
        said = second.close()
    assert second.proc.returncode == 0, said
    if store.kind == "postgresql":
        assert not (here / "rag" / "docs" / "rag.db").exists()  # nothing of it in a home
