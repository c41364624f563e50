"""The latency gate times champion and challenger in turns, so load hits both alike."""

from __future__ import annotations

import time
from typing import Any

from keizoku.lifecycle.gates import GateConfig, latency_gate, latency_ms


class _Load:
    """A shared machine: the first ``busy`` scoring calls (of either model) are slow."""

    def __init__(self, busy: int) -> None:
        self.calls = 0
        self.busy = busy

    def score(self, extra_s: float) -> None:
        self.calls += 1
        time.sleep(0.020 if self.calls <= self.busy else 0.0)
        time.sleep(extra_s)


class _Model:
    def __init__(self, load: _Load, extra_s: float = 0.0) -> None:
        self.load, self.extra_s = load, extra_s

    def predict_raw_records(self, records: list[dict[str, Any]]) -> list[float]:
        self.load.score(self.extra_s)
        return [0.0] * len(records)


def test_a_burst_of_load_does_not_fail_an_equally_fast_challenger() -> None:
    # 2 warm-up calls + 100 timed ones; the first 40 % of the timed calls are slow. Timed one
    # model after the other, the champion would take all of them (median 20 ms, and the gate
    # would judge against a slow champion); in turns each takes about 20 of its 50.
    load = _Load(busy=42)
    champion, challenger = _Model(load), _Model(load)
    champ_ms, chall_ms = latency_ms(champion, challenger, [{"x": 1}], repeats=50)  # type: ignore[arg-type]
    assert champ_ms < 10.0 and chall_ms < 10.0, (
        champ_ms,
        chall_ms,
    )  # neither median is a busy call
    assert latency_gate(champ_ms, chall_ms, GateConfig()).passed


def test_a_really_slower_challenger_still_fails() -> None:
    load = _Load(busy=0)
    champion, challenger = _Model(load), _Model(load, extra_s=0.020)
    champ_ms, chall_ms = latency_ms(champion, challenger, [{"x": 1}], repeats=10)  # type: ignore[arg-type]
    assert chall_ms > champ_ms + 15.0
    check = latency_gate(champ_ms, chall_ms, GateConfig())
    assert not check.passed and "too slow" in check.detail
