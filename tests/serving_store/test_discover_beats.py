"""``promote``'s wait counts a server started without ``--model`` as one that should serve
every model (decision 0028); a server started with ``--model`` only its own."""

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
