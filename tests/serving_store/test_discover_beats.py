"""``promote``'s wait counts a server started without ``--model`` as one that should serve
every model (decision 0028); a server started with ``--model`` only its own. The wait's
bound: ``--wait-timeout``, never under one poll and beat of the slowest server."""

from __future__ import annotations

import time

from keizoku.lifecycle.servers import Beat, _read, disagreements


def _beat(pid: int, models: dict[str, dict[str, int]], *, discover: bool) -> Beat:
    served = {name: {"variants": variants} for name, variants in models.items()}
    return Beat(pid, "here", 8000 + pid, "127.0.0.1", 0.0, time.time(), 1.0, served, discover)


def test_a_discovering_server_that_does_not_serve_the_model_yet_is_late() -> None:
    expected = {"champion": 2}
    pinned_other = _beat(1, {"other": {"champion": 1}}, discover=False)
    discovering = _beat(2, {}, discover=True)
    caught_up = _beat(3, {"birds": {"champion": 2}}, discover=True)
    behind = _beat(4, {"birds": {"champion": 1}}, discover=False)
    late = disagreements("birds", [pinned_other, discovering, caught_up, behind], expected)
    assert [(b.pid, served) for b, served in late] == [(2, {}), (4, {"champion": 1})]


def test_a_beat_says_whether_its_server_discovers_and_old_beats_do_not() -> None:
    new = _beat(1, {}, discover=True).to_dict()
    new.pop("label")
    old = {k: v for k, v in new.items() if k != "discover"}  # written before the field
    assert _read(new) is not None and _read(new).discover is True  # type: ignore[union-attr]
    assert _read(old) is not None and _read(old).discover is False  # type: ignore[union-attr]


def test_the_wait_is_what_was_asked_but_never_under_one_poll_and_beat() -> None:
    from keizoku.lifecycle.servers import wait_bound, wait_floor

    fast, slow = _beat(1, {}, discover=True), _beat(2, {}, discover=True)
    slow = Beat(**{**slow.__dict__, "interval_s": 5.0})
    assert wait_floor([fast, slow]) == 11.0  # a poll, then the beat that reports it, + 1 s
    assert wait_bound([fast, slow], 2.0) == 11.0
    assert wait_bound([fast, slow], 30.0) == 30.0
    assert wait_bound([fast], 2.0) == 3.0 and wait_bound([], 0.0) == 1.0
    assert wait_bound([fast]) == 15.0  # the default: 15 s at least,
    assert wait_bound([Beat(**{**slow.__dict__, "interval_s": 60.0})]) == 60.0  # 60 s at most
    assert wait_bound([Beat(**{**slow.__dict__, "interval_s": 10.0})]) == 31.0  # else 3 beats
