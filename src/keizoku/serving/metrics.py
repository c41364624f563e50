"""Prometheus metrics in the text exposition format (version 0.0.4), written by hand.

``prometheus_client`` is not a dependency; the server needs counters and histograms
only, held per process (with ``--workers N`` each worker exposes its own).

What every process of a home shares: each adds its prediction requests per model and hour
(count, answers ≥ 400, latency histogram over ``BUCKETS``) to the model's buckets
(``keizoku.monitoring.buckets.add_requests``) every ``share_s`` seconds (``keizoku serve
--share-interval``, ``SHARE_S`` by default) from a thread of its own, and at exit; the
console's Monitoring page reads them, all workers and servers together. A process killed
without exiting loses at most its last ``share_s`` seconds.
"""

from __future__ import annotations

import atexit
import logging
import math
import threading
import time
from bisect import bisect_left
from pathlib import Path
from typing import Any

__all__ = ["Metrics", "CONTENT_TYPE", "SHARE_S"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
SHARE_S = 5.0
_log = logging.getLogger("keizoku.serving")
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

Labels = tuple[tuple[str, str], ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _fmt(labels: Labels, extra: tuple[tuple[str, str], ...] = ()) -> str:
    items = labels + extra
    if not items:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in items) + "}"


def _num(value: float) -> str:
    return repr(float(value)) if value != int(value) else str(int(value))


class _Histogram:
    __slots__ = ("counts", "sum", "count")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(BUCKETS, value)] += 1
        self.sum += value
        self.count += 1


class Metrics:
    """Request counts, latency histograms, errors and predictions, by model and version."""

    def __init__(
        self, *, share: bool = True, root: Path | None = None, share_s: float = SHARE_S
    ) -> None:
        """``share``: add requests to the home's buckets (``root``: the log root) every
        ``share_s`` seconds."""
        self._lock = threading.Lock()
        self._share, self._root, self._share_s = share, root, share_s
        self._pending: dict[tuple[str, float], list[Any]] = {}  # (model, hour) → n, errors, hist
        self._sharer: threading.Thread | None = None
        self.started = time.time()
        self.requests: dict[Labels, int] = {}
        self.predictions: dict[Labels, int] = {}
        self.errors: dict[Labels, int] = {}
        self.latency: dict[Labels, _Histogram] = {}
        self.swaps: dict[Labels, int] = {}
        self.loaded: dict[tuple[str, str], int] = {}

    def request(self, model: str, version: str, variant: str, status: int, seconds: float) -> None:
        """One prediction request; ``version``/``variant`` are "-" when none answered."""
        lat = (("model", model), ("version", version), ("variant", variant))
        key = (*lat, ("status", str(status)))
        with self._lock:
            self.requests[key] = self.requests.get(key, 0) + 1
            hist = self.latency.get(lat)
            if hist is None:
                hist = self.latency[lat] = _Histogram()
            hist.observe(seconds)
            if self._share and not model.startswith("<"):  # "<unknown>": no such model
                hour = math.floor(time.time() / 3600) * 3600
                add = self._pending.setdefault((model, hour), [0, 0, [0] * (len(BUCKETS) + 1)])
                add[0], add[1] = add[0] + 1, add[1] + (status >= 400)
                add[2][bisect_left(BUCKETS, seconds)] += 1
                if self._sharer is None:
                    self._start_sharing()

    def _start_sharing(self) -> None:
        self._sharer = threading.Thread(target=self._share_loop, name="keizoku-metrics",
                                        daemon=True)  # fmt: skip
        self._sharer.start()
        atexit.register(self.share)

    def _share_loop(self) -> None:
        while True:
            time.sleep(self._share_s)
            self.share()

    def share(self) -> None:
        """Add the requests counted since the last call to the home's buckets."""
        from keizoku.monitoring.buckets import add_requests

        with self._lock:
            pending, self._pending = self._pending, {}
        by_model: dict[str, dict[float, tuple[int, int, list[int]]]] = {}
        for (model, hour), (n, errors, hist) in pending.items():
            by_model.setdefault(model, {})[hour] = (n, errors, hist)
        for model, hours in by_model.items():
            try:
                add_requests(model, hours, self._root)
            except Exception as exc:  # noqa: BLE001 - kept for the next try
                _log.warning("Could not share request metrics of '%s': %s", model, exc)
                with self._lock:
                    for hour, (n, errors, hist) in hours.items():
                        add = self._pending.setdefault((model, hour), [0, 0, [0] * len(hist)])
                        add[0], add[1] = add[0] + n, add[1] + errors
                        add[2] = [a + b for a, b in zip(add[2], hist, strict=True)]

    def predicted(self, model: str, version: int, variant: str, n: int, shadow: bool) -> None:
        key = (
            ("model", model),
            ("version", str(version)),
            ("variant", variant),
            ("shadow", "true" if shadow else "false"),
        )
        with self._lock:
            self.predictions[key] = self.predictions.get(key, 0) + n

    def error(self, model: str, kind: str) -> None:
        key = (("model", model), ("kind", kind))
        with self._lock:
            self.errors[key] = self.errors.get(key, 0) + 1

    def swapped(self, model: str, outcome: str) -> None:
        key = (("model", model), ("outcome", outcome))
        with self._lock:
            self.swaps[key] = self.swaps.get(key, 0) + 1

    def set_loaded(self, model: str, variants: dict[str, int]) -> None:
        with self._lock:
            for key in [k for k in self.loaded if k[0] == model]:
                del self.loaded[key]
            for alias, version in variants.items():
                self.loaded[(model, alias)] = version

    def render(self) -> str:
        with self._lock:
            lines = [
                "# HELP keizoku_up_seconds Seconds since the server started.",
                "# TYPE keizoku_up_seconds gauge",
                f"keizoku_up_seconds {time.time() - self.started:.3f}",
            ]
            lines += self._counter(
                "keizoku_requests_total",
                "Prediction requests by model, version, variant, status.",
                self.requests,
            )
            lines += self._counter(
                "keizoku_predictions_total",
                "Records scored, by model, version, variant and shadow.",
                self.predictions,
            )
            lines += self._counter(
                "keizoku_errors_total", "Failed prediction requests by kind.", self.errors
            )
            lines += self._counter(
                "keizoku_model_swaps_total", "Hot swaps by model and outcome.", self.swaps
            )
            lines += self._loaded()
            lines += self._histograms()
        return "\n".join(lines) + "\n"

    @staticmethod
    def _counter(name: str, help_: str, values: dict[Labels, int]) -> list[str]:
        out = [f"# HELP {name} {help_}", f"# TYPE {name} counter"]
        out += [f"{name}{_fmt(k)} {v}" for k, v in sorted(values.items())]
        return out

    def _loaded(self) -> list[str]:
        name = "keizoku_model_version"
        out = [f"# HELP {name} Version served by each model alias.", f"# TYPE {name} gauge"]
        for (model, alias), version in sorted(self.loaded.items()):
            out.append(f"{name}{_fmt((('model', model), ('alias', alias)))} {version}")
        return out

    def _histograms(self) -> list[str]:
        name = "keizoku_request_duration_seconds"
        out = [
            f"# HELP {name} Prediction request latency (server side).",
            f"# TYPE {name} histogram",
        ]
        for labels, hist in sorted(self.latency.items()):
            acc = 0
            for bound, count in zip((*BUCKETS, float("inf")), hist.counts, strict=True):
                acc += count
                le = "+Inf" if bound == float("inf") else _num(bound)
                out.append(f"{name}_bucket{_fmt(labels, (('le', le),))} {acc}")
            out.append(f"{name}_sum{_fmt(labels)} {hist.sum:.6f}")
            out.append(f"{name}_count{_fmt(labels)} {hist.count}")
        return out
