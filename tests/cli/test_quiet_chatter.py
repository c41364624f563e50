"""``-q`` silences the confirmations of ``keys`` and ``rag`` too (issue 12): what stays on
stdout is what a script reads (a token, search hits), through the real executable."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from kzsupport import KEIZOKU_EXE


def _run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KEIZOKU_HOME": str(home)}
    return subprocess.run([KEIZOKU_EXE, *args], cwd=home.parent, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def test_quiet_keys_print_only_the_token(tmp_path: Path) -> None:
    home = tmp_path / ".keizoku"
    loud = _run(home, "keys", "create", "--name", "ci", "--role", "admin")
    assert loud.returncode == 0, loud.stderr
    assert "created" in loud.stderr
    quiet = _run(home, "-q", "keys", "create", "--name", "bot", "--role", "predict")
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == ""
    token = quiet.stdout.strip()
    assert len(token.splitlines()) == 1 and len(token) >= 20
    revoked = _run(home, "-q", "keys", "revoke", "bot")
    assert (revoked.returncode, revoked.stdout, revoked.stderr) == (0, "", "")
    listed = _run(home, "-q", "keys", "list")
    assert "bot" in listed.stdout and "revoked" in listed.stdout  # a result, still printed
    missing = _run(home, "-q", "keys", "revoke", "nobody")
    assert missing.returncode == 3 and "nobody" in missing.stderr  # errors are never silenced


def test_quiet_rag_ingest_prints_nothing_and_search_prints_hits(tmp_path: Path) -> None:
    home = tmp_path / ".keizoku"
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "leave.md").write_text("# Leave\n\nStaff get twenty days of paid leave a year.\n")
    conf = tmp_path / "rag.yaml"
    conf.write_text("embeddings:\n  backend: none\n")
    args = ("rag", "ingest", str(docs), "-C", "kb", "-c", str(conf), "--allow", "user:alice")
    loud = _run(home, *args, "--rebuild")
    assert loud.returncode == 0, loud.stderr
    assert "1 added" in loud.stdout or "updated" in loud.stdout
    quiet = _run(home, "-q", *args, "--rebuild")
    assert (quiet.returncode, quiet.stdout) == (0, ""), quiet.stderr
    found = _run(home, "-q", "rag", "search", "paid leave", "-C", "kb", "--user", "alice")
    assert found.returncode == 0, found.stderr
    assert "leave" in found.stdout.lower()
    none = _run(home, "-q", "rag", "search", "zzzqqq", "-C", "kb", "--user", "alice")
    assert (none.returncode, none.stdout) == (0, "")
