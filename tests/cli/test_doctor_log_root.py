"""``keizoku doctor`` warns when the store is shared (PostgreSQL) but the prediction log is
not (``KEIZOKU_LOG_ROOT`` unset): each server would keep its log in its own home, out of
sight of ``monitor`` on another machine. Through the real executable, on a real
PostgreSQL server; the warning names the setting and the fix and leaves the exit code."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from kzsupport import KEIZOKU_EXE
from pgsupport import Postgres, postgres  # noqa: F401 - the fixture

_SETTINGS = ("KEIZOKU_STORE", "KEIZOKU_LOG_ROOT", "KEIZOKU_TRACKING_URI", "KEIZOKU_ARTIFACT_ROOT")


def _doctor(where: Path, *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in _SETTINGS}
    env.update({"KEIZOKU_HOME": str(where / ".keizoku"), "COLUMNS": "200", **settings})
    return subprocess.run([KEIZOKU_EXE, "doctor", *args], cwd=where, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def test_a_shared_store_without_a_shared_log_is_a_warning(
    postgres: Postgres,  # noqa: F811 - the fixture
    tmp_path: Path,
) -> None:
    url = postgres.database()
    text = _doctor(tmp_path, KEIZOKU_STORE=url)
    assert text.returncode == 0, text.stderr
    warnings = [line for line in text.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, text.stderr
    assert "KEIZOKU_LOG_ROOT is unset" in warnings[0]
    assert str(tmp_path / ".keizoku") in warnings[0]  # where the log goes instead
    assert "Set KEIZOKU_LOG_ROOT to a folder every server" in warnings[0]
    assert text.stdout.strip().endswith("ok")

    as_json = _doctor(tmp_path, "--json", KEIZOKU_STORE=url)
    assert as_json.returncode == 0, as_json.stderr
    report = json.loads(as_json.stdout)  # the warning is in the JSON, not on stderr
    assert report["ok"] is True and len(report["warnings"]) == 1
    assert "KEIZOKU_LOG_ROOT is unset" in report["warnings"][0]
    assert "warning:" not in as_json.stderr

    shared = _doctor(tmp_path, "--json", KEIZOKU_STORE=url,
                     KEIZOKU_LOG_ROOT=str(tmp_path / "shared-log"))  # fmt: skip
    assert shared.returncode == 0, shared.stderr
    assert json.loads(shared.stdout)["warnings"] == []


def test_the_embedded_store_needs_no_shared_log(tmp_path: Path) -> None:
    embedded = _doctor(tmp_path, "--json")
    assert embedded.returncode == 0, embedded.stderr
    assert json.loads(embedded.stdout)["warnings"] == []
    assert "warning:" not in embedded.stderr
