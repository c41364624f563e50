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
    if res.exception and not isinstance(res.exception, SystemExit):
        raise res.exception
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


def test_collection_config_file_and_info(tmp_path: Path, write, stand_in) -> None:  # type: ignore[no-untyped-def]
    docs = tmp_path / "docs"
    write(docs / "ja.md", "# 手順\n\nデプロイは毎週火曜日に行う。障害時は当番が判断する。\n")
    bad = write(tmp_path / "bad.yaml", "embeddings:\n  url: localhost:8080\n")
    code, out = run("ingest", str(docs), "-C", "ja", "-c", str(bad), "--allow", "group:everyone")
    assert code == 2 and "embeddings.url 'localhost:8080'" in out
    code, out = run("ingest", str(docs), "-C", "ja", "--allow", "group:everyone")
    assert code == 0 and "lexical-only" in out
    code, out = run("info", "-C", "ja", "--json")
    assert json.loads(out)["search"] == "lexical-only (BM25)"
    good = write(tmp_path / "rag.yaml", f"rag:\n  embeddings:\n    url: {stand_in.base}\n"
                 "    model: stand-in\n  chunking:\n    max_chars: 100\n")  # fmt: skip
    code, out = run(
        "ingest",
        str(docs),
        "-C",
        "ja",
        "-c",
        str(good),
        "--rebuild",
        "--json",
        "--allow",
        "group:everyone",
    )
    assert code == 0 and json.loads(out)["embedding"].startswith("http stand-in")
    code, out = run("info", "-C", "ja", "--json")
    assert json.loads(out)["search"] == "hybrid (BM25 + dense)"
