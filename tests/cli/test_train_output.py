"""`keizoku train` as a log, a table and a JSON summary, through the real executable.

Piped (not a terminal), train writes one line per finished trial and per phase as they
happen; the leaderboard shows one row per family (``--all``: every trial), a legend, and
the same score in the table and the "Best" line; ``--json`` is one stable object; the
summary says where the budget went. ``max_trials`` keeps the trials deterministic (with a
long budget the trials, not the clock, end the search, even on a loaded machine).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from sklearn.datasets import make_friedman1

from kzsupport import KEIZOKU_EXE, REPO, CliResult

PENGUINS = REPO / "examples" / "data" / "penguins.csv"
PHASES = ("startup", "read", "search", "evidence", "registration", "gates")


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "COLUMNS": "200", "KEIZOKU_HOME": str(home)}


def _run(root: Path, *args: str) -> CliResult:
    proc = subprocess.run(
        [KEIZOKU_EXE, *args],
        cwd=root,
        env=_env(root / ".keizoku"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    return CliResult(proc)


@pytest.fixture(scope="module")
def penguins(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("penguins")
    assert _run(root, "init", str(PENGUINS), "--target", "species").code == 0
    return root


@pytest.fixture(scope="module")
def first(penguins: Path) -> dict[str, object]:
    """The first train, piped: stderr read line by line while the command runs."""
    cmd = [KEIZOKU_EXE, "train", "--budget", "10m", "--max-trials", "3"]
    cmd += ["--family", "linear", "--family", "lightgbm"]
    proc = subprocess.Popen(
        cmd,
        cwd=penguins,
        env=_env(penguins / ".keizoku"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None and proc.stdout is not None
    lines, running_at_first_trial = [], None
    for line in proc.stderr:
        lines.append(line)
        if running_at_first_trial is None and "] trial 1 " in line:
            running_at_first_trial = proc.poll() is None
    out = proc.stdout.read()
    assert proc.wait(timeout=600) == 0, "".join(lines) + out
    return {"err": lines, "out": out, "live": running_at_first_trial}


def test_piped_train_logs_each_trial_and_phase_while_it_runs(first: dict[str, object]) -> None:
    err = first["err"]
    assert isinstance(err, list)
    trials = [line for line in err if re.search(r"\] trial \d+ \w+: ", line)]
    assert len(trials) == 3, err
    assert first["live"] is True, "the first trial's line came only after the command ended"
    done = [line.split("] ")[1].split()[0] for line in err if line.rstrip().endswith(" done")]
    assert done == list(PHASES), done  # each phase once, in order
    last_trial = max(i for i, line in enumerate(err) if line in trials)
    assert last_trial < next(i for i, line in enumerate(err) if "] search done" in line)


def _table_rows(out: str) -> list[list[str]]:
    return [
        [cell.strip() for cell in line.split("│")[1:-1]]
        for line in out.splitlines()
        if line.startswith("│")
    ]


def test_leaderboard_has_one_row_per_family_a_legend_and_the_best_lines_score(
    first: dict[str, object],
) -> None:
    out = str(first["out"])
    assert "Leaderboard (CV log_loss)" in out
    assert "the best trial of each family; --all: every trial" in out
    rows = _table_rows(out)
    per_family = {r[1]: int(r[2]) for r in rows if r[1] != "ensemble"}
    assert set(per_family) == {"linear", "lightgbm"}
    assert sum(per_family.values()) == 3  # the trials of each family add up to all trials
    unchosen = [r[1] for r in rows if "★" not in r[-1] and r[1] != "ensemble"]
    assert len(unchosen) == len(set(unchosen))  # beyond the chosen ones, one row per family
    assert "★ chosen for the model; ×N: picked N times" in out
    best = re.search(r"Best: (.+?) · CV log_loss ([0-9.]+)", out)
    assert best is not None, out
    chosen = [r for r in rows if "★" in r[-1] or r[1] == "ensemble"]
    shown = chosen[-1] if best.group(1).startswith("ensemble") else chosen[0]
    assert shown[3] == best.group(2)  # the same number in the table and the Best line


def test_summary_says_where_the_budget_went(first: dict[str, object]) -> None:
    out = " ".join(str(first["out"]).split())
    m = re.search(r"Time: ([0-9.]+)s of a 600s budget — (.*?) \(s\)", out)
    assert m is not None, out
    phases = re.sub(r"\(.*?\)", "", m.group(2)).split(" · ")
    parts = dict(p.strip().rsplit(" ", 1) for p in phases)
    assert [k.strip() for k in parts] == list(PHASES)
    assert sum(float(v) for v in parts.values()) <= float(m.group(1)) + 0.1 * len(parts)
    assert "3 trials, stopped at --max-trials 3" in out


@pytest.fixture(scope="module")
def gated_json(penguins: Path, first: dict[str, object]) -> CliResult:
    """A second train (gated against the first) with --json and the deprecated --model."""
    return _run(
        penguins, "train", "--budget", "10m", "--max-trials", "2", "--model", "linear", "--json"
    )


def test_train_json_is_one_documented_object(gated_json: CliResult) -> None:
    assert gated_json.code in (0, 6), gated_json.text
    doc = json.loads(gated_json.out)  # stdout is the JSON alone; the log is on stderr
    assert doc["schema"] == "keizoku.train/1"
    assert doc["model"] == "penguins" and doc["version"] == 2
    assert doc["state"] in ("challenger", "gated-fail")
    assert (doc["state"] == "gated-fail") == (gated_json.code == 6)
    assert [c["name"] for c in doc["gates"]]  # gated against the champion
    assert doc["budget_s"] == 600.0 and doc["wall_s"] > 0
    assert list(doc["phases"]) == list(PHASES)
    assert sum(doc["phases"].values()) <= doc["wall_s"] + 0.01
    board = doc["leaderboard"]
    assert len(board) == doc["trials"] and {r["model"] for r in board} == {"linear"}
    picked = [r for r in board if r["chosen"]]
    # the "Best" line's numbers (docs/training.md): one chosen row is shown with its own
    # score and std (a bag of fold models included), an ensemble of rows with its
    # out-of-fold score and no std
    if len(picked) == 1:
        assert doc["best"]["score"] == picked[0]["score"]
        assert doc["best"]["std"] == picked[0]["std"]
    else:
        assert doc["best"]["score"] == doc["cv_score_oof"] and doc["best"]["std"] is None


def test_train_model_is_a_deprecated_alias_of_family(gated_json: CliResult) -> None:
    assert "`keizoku train --model` is deprecated: use --family" in gated_json.err


def test_help_shows_family_not_model(tmp_path: Path) -> None:
    out = _run(tmp_path, "train", "--help").out
    assert "--family" in out and "--model" not in out and "--all" in out and "--json" in out


def test_all_shows_every_trial_and_a_note_when_a_limit_drops_a_better_model(
    tmp_path: Path,
) -> None:
    x, y = make_friedman1(n_samples=300, noise=0.5, random_state=0)
    lines = ["x0,x1,x2,x3,x4,x5,x6,x7,x8,x9,y"]
    lines += [
        ",".join(f"{v:.6f}" for v in (*row, target)) for row, target in zip(x, y, strict=True)
    ]
    (tmp_path / "friedman.csv").write_text("\n".join(lines) + "\n")
    assert _run(tmp_path, "init", "friedman.csv", "--target", "y").code == 0
    # Boosted trees fit Friedman's function far better than a linear model, and are bigger.
    res = _run(
        tmp_path, "train", "--budget", "10m", "--max-trials", "2", "--all",
        "--family", "linear", "--family", "lightgbm", "--max-size-mb", "0.02",
    )  # fmt: skip
    assert res.code == 0, res.text
    assert "Leaderboard (CV rmse)" in res.out and "every trial" in res.out
    rows = _table_rows(res.out)
    assert sorted(r[1] for r in rows) == ["lightgbm", "linear"]
    assert "too big" in next(r[-1] for r in rows if r[1] == "lightgbm")
    assert re.search(
        r"note: lightgbm \(trial \d\) scored [0-9.]+, better than the chosen [0-9.]+, but was "
        r"dropped: [0-9.]+ MB is over your limit \(too big\)\. Pass a larger --max-size-mb",
        " ".join(res.out.split()),
    ), res.out
