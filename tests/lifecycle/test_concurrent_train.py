"""Two ``keizoku train`` at once on a used home: what each prints about the challenger is true.

Both candidates pass (lenient gates) and are admitted one after the other under the
model's lock; the second admission displaces the first. The second must say which
version it replaced; the first must not be left claiming a slot it lost without the
second saying so.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from kzsupport import KEIZOKU_EXE
from rollout_support import MODEL, trained_copy

pytestmark = pytest.mark.slow

# What is checked is the admission of two candidates at once, not their model: the
# cheapest search (the lenient gates pass either family against the LightGBM champion).
TRAIN = ["train", "--budget", "60s", "--preset", "fast", "--family", "linear", "--max-trials", "1"]


def test_two_concurrent_trains_say_who_displaced_whom(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from keizoku.registry.models import aliases

    root = trained_copy(tmp_path / "proj")  # peng v1 champion, v2 challenger, lenient gates
    env = {**os.environ, "KEIZOKU_HOME": str(root / ".keizoku"), "COLUMNS": "400"}
    procs = [
        subprocess.Popen([KEIZOKU_EXE, *TRAIN], cwd=root, env=env, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]  # fmt: skip
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, out + err
    texts = [" ".join(out.split()) for out, _ in outs]
    versions = []
    for text in texts:
        [mine] = [v for v in (3, 4) if f"Registered {MODEL}:{v}:" in text]
        versions.append(mine)
    assert sorted(versions) == [3, 4], texts

    monkeypatch.setenv("KEIZOKU_HOME", env["KEIZOKU_HOME"])
    final = aliases(MODEL)["challenger"]
    other = 7 - final
    last, first = texts[versions.index(final)], texts[versions.index(other)]
    # the winner names the version it displaced: the other candidate, admitted before it
    assert f"is the challenger. It replaced {MODEL}:{other} as challenger." in last, last
    # the other replaced v2; it says it is the challenger only if it printed before it lost
    assert f"It replaced {MODEL}:2 as challenger." in first, first
    lost = f"but {MODEL}:{final} has replaced it since"
    assert lost in first or "is the challenger." in first, first
