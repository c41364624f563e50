"""``keizoku rag`` commands through Typer's runner (the real library underneath)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from keizoku import auth
from keizoku.cli.rag import rag_app

runner = CliRunner()


def run(*args: str) -> tuple[int, str]:
    res = runner.invoke(rag_app, list(args))
    return res.exit_code, res.output


def test_ingest_search_ask_acl_audit(tmp_path: Path, write) -> None:  # type: ignore[no-untyped-def]
    docs = tmp_path / "docs"
    write(docs / "hr.md", "# HR\n\n## Leave\n\nStaff get 30 days of leave. Ask HR first.\n")
    write(docs / "eng.md", "# Eng\n\n## Deploys\n\nDeploys run on Tuesdays.\n")
    code, out = run("ingest", str(docs / "hr.md"), "-C", "kb", "--allow", "group:hr")
    assert code == 0 and "1 added" in out
    code, out = run("ingest", str(docs / "eng.md"), "-C", "kb", "--allow", "user:bob")
    assert code == 0
    auth.set_user_groups("alice", ["hr"])
    code, out = run("search", "days of leave", "-C", "kb", "--user", "alice", "--json")
    assert code == 0 and {Path(h["source"]).name for h in json.loads(out)} == {"hr.md"}
    code, out = run("search", "leave", "-C", "kb")
    assert code == 0 and out.strip() == "No results."
    code, out = run("ask", "How many days of leave?", "-C", "kb", "--user", "alice")
    assert code == 0 and out.startswith("(extractive) Staff get 30 days of leave. [1]")
    assert "[1] HR — HR > Leave" in out
    code, out = run("acl", "set", str(docs / "hr.md"), "-C", "kb", "--allow", "user:bob")
    assert code == 0 and out.strip().endswith("user:bob")
    code, out = run("search", "leave", "-C", "kb", "--user", "alice", "--json")
    assert json.loads(out) == []
    code, out = run("docs", "-C", "kb", "--json")
    assert [d["allow"] for d in json.loads(out)] == [["user:bob"], ["user:bob"]]
    code, out = run("audit", "-C", "kb", "--json")
    events = [json.loads(line) for line in out.splitlines()]
    assert [(e["user"], e["action"]) for e in events] == [
        ("alice", "search"), (None, "search"), ("alice", "ask"), ("alice", "search")]  # fmt: skip
    assert events[2]["cited"] == [str((docs / "hr.md").resolve())]
    code, out = run("search", "x", "-C", "nope", "--user", "alice")
    assert code == 3 and "Collection 'nope' does not exist" in out
    code, out = run("list")
    assert out.split() == ["kb"]
    code, out = run("eval", "-C", "kb")
    assert code == 2 and "Pass --queries and --qrels (BEIR), or --squad FILE." in out
