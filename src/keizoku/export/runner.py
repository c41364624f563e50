"""Run a keizoku edge bundle: needs only numpy and onnxruntime (and Python's standard library).

``python -m runner record.json`` (a record or a list of records; ``-`` reads stdin) prints
the predictions as JSON; ``from runner import predict; predict([record, ...])`` returns them.
Before anything runs, every file of the bundle is checked against the sha256 recorded in
``manifest.json``: a changed or missing file is refused. Records are validated as keizoku's
REST API validates them: every feature is required, types are checked, an unseen category
is an error unless ``allow_unseen`` (then it is scored as the model scores an unknown value).

Exit codes of the command: 0 done, 2 a bad record or file, 5 a tampered bundle.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

__all__ = ["Bundle", "BundleError", "RecordError", "canonical", "predict", "verify"]

HERE = Path(__file__).resolve().parent
MANIFEST = "manifest.json"
MISSING = "\x1fmissing"  # keizoku.export.graph.MISSING: the text of a missing category
MAX_ABS = 1e15
MAX_TEXT = 100_000
_TYPES: dict[str, tuple[type, ...]] = {"str": (str,), "bool": (bool,)}  # else numbers
_BOOLEANS = {"true": "true", "false": "false"}
_ABSENT = object()
Row = tuple[list[float], list[str], list[float]]  # numeric, categorical, datetime values
EPOCH_ORDINAL = 719163  # date(1970, 1, 1).toordinal()


class BundleError(Exception):
    """The bundle's files are not the ones exported (sha256 mismatch, missing file)."""


class RecordError(ValueError):
    """A record the model cannot score: the message names the field, the value and the fix."""


def canonical(value: Any) -> str:
    """The canonical text of a category value (as keizoku.data.labels.canonical)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else str(value)
    text = str(value).strip()
    return _BOOLEANS.get(text.lower(), text)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(folder: Path = HERE) -> dict[str, str]:
    """The manifest ({file: sha256}) after checking every file it lists; BundleError if not."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise BundleError(
            f"Refusing the bundle in {folder}: cannot read {MANIFEST} ({exc})."
        ) from exc
    for name, expected in sorted(manifest["files"].items()):
        path = folder / name
        actual = _sha256(path) if path.is_file() else "(missing)"
        if actual != expected:
            raise BundleError(
                f"Refusing the bundle in {folder}: file '{name}' has sha256 {actual[:12]}…, "
                f"the manifest records {expected[:12]}…; it was changed or damaged after "
                "export. Export it again with `keizoku export`."
            )
    return dict(manifest["files"])


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "string" if isinstance(value, str) else type(value).__name__


class Bundle:
    """A verified bundle, ready to score records."""

    def __init__(self, folder: Path | str = HERE, *, check: bool = True) -> None:
        """``check=False`` skips the manifest (keizoku's parity check, before it exists)."""
        import numpy as np
        import onnxruntime as ort

        self.folder = Path(folder)
        if check:
            verify(self.folder)
        self.schema = json.loads((self.folder / "schema.json").read_text())
        self.classes = json.loads((self.folder / "labels.json").read_text())["classes"]
        self.numeric: list[str] = self.schema["numeric"]
        self.categorical: list[str] = self.schema["categorical"]
        self.dates: list[str] = self.schema.get("datetime", [])
        self.fields: dict[str, dict[str, Any]] = self.schema["fields"]
        self.optional = set(self.schema.get("optional", []))
        self.known = {
            n: {canonical(c) for c in f.get("categories") or []} for n, f in self.fields.items()
        }
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(self.folder / "model.onnx"), options, providers=["CPUExecutionProvider"]
        )
        self.outputs = ["value"] if self.classes is None else ["probabilities"]
        self._np = np
        self._local = threading.local()  # per thread: one record's input buffers
        # (name, kind, nullable, the JSON types of its values, its known categories): the
        # fast path's view of the fields, in the graph's input order (else no fast path)
        specs = [
            (n, f["kind"], bool(f["nullable"]), _TYPES.get(f["dtype"], (int, float)), self.known[n])
            for n, f in self.fields.items()
        ]
        order = tuple(
            [n for n, kind, *_ in specs if group(kind)]
            for group in (lambda k: k == "numeric", lambda k: k not in ("numeric", "datetime"),
                          lambda k: k == "datetime")
        )  # fmt: skip
        same = order == (self.numeric, self.categorical, self.dates)
        self._specs: list[tuple[str, str, bool, tuple[type, ...], set[str]]] | None = (
            specs if same else None
        )

    # ----------------------------------------------------------------- validation
    def _check(self, index: int, record: Any, allow_unseen: bool) -> None:
        where = f"record {index}"
        if not isinstance(record, dict):
            raise RecordError(f"{where}: expected a JSON object, got {_json_type(record)}.")
        for name in record:
            if name not in self.fields and name not in self.optional:
                raise RecordError(
                    f"{where}: unknown field '{name}'. The model's fields are: "
                    f"{', '.join(self.fields)}."
                )
        for name, spec in self.fields.items():
            if name not in record:
                if allow_unseen:
                    continue
                raise RecordError(
                    f"{where}: field '{name}' is required (a {spec['kind']} feature); send it, "
                    "or null when unknown, or pass allow_unseen to score it as missing."
                )
            value = record[name]
            if value is None:
                if not spec["nullable"] and not allow_unseen:
                    raise RecordError(
                        f"{where}: field '{name}' is null but training had no missing values; "
                        "send a value, or pass allow_unseen to score it as missing."
                    )
                continue
            problem = self._problem(name, spec, value)
            if problem == "unseen" and allow_unseen:
                continue
            if problem is not None:
                raise RecordError(f"{where}: field '{name}' = {value!r}: {problem}")

    def _problem(self, name: str, spec: dict[str, Any], value: Any) -> str | None:
        if spec["kind"] == "datetime":
            if not isinstance(value, str):
                return f"expected a date/time string (ISO 8601), got {_json_type(value)}."
            try:
                datetime.fromisoformat(value)
            except ValueError:
                return "expected an ISO 8601 date/time such as '2024-01-31T12:00:00'."
            return None
        if spec["kind"] == "numeric":
            if isinstance(value, bool) or not isinstance(value, int | float):
                return f"expected a number, got {_json_type(value)}."
            if isinstance(value, float) and not math.isfinite(value):
                return "expected a finite number."
            if abs(value) > MAX_ABS:
                return f"number is too large (the limit is ±{MAX_ABS:g})."
            return None
        want: tuple[type, ...] = {"str": (str,), "bool": (bool,)}.get(spec["dtype"], (int, float))
        if not isinstance(value, want) or (want == (int, float) and isinstance(value, bool)):
            label = {"str": "string", "bool": "boolean"}.get(spec["dtype"], "number")
            return f"expected a {label} (one of the categories), got {_json_type(value)}."
        if isinstance(value, float) and not math.isfinite(value):
            return "expected a finite number."
        if isinstance(value, str) and len(value) > MAX_TEXT:
            return f"text longer than {MAX_TEXT} characters."
        if self.known[name] and canonical(value) not in self.known[name]:
            return "unseen"
        return None

    # -------------------------------------------------------------------- scoring
    def _fast_row(self, record: Any) -> Row | None:
        """A plainly valid record's row (every field, nothing else, each value of its
        kind and seen), or None when anything needs ``_check``'s full rules and messages."""
        if type(record) is not dict or len(record) != len(self.fields) or self._specs is None:
            return None
        nums: list[float] = []
        cats: list[str] = []
        dates: list[float] = []
        for name, kind, nullable, kinds, known in self._specs:
            value = record.get(name, _ABSENT)
            kind_of = type(value)
            if value is None:
                if not nullable:
                    return None
                if kind == "numeric":
                    nums.append(math.nan)
                elif kind == "datetime":
                    dates.append(math.nan)
                else:
                    cats.append(MISSING)
            elif kind == "numeric":
                if kind_of not in (int, float) or not -MAX_ABS <= value <= MAX_ABS:
                    return None  # also NaN and ±inf (no comparison holds)
                nums.append(float(value))
            elif kind == "datetime":
                if kind_of is not str:
                    return None
                try:
                    dates.append(_seconds(value))
                except ValueError:
                    return None
            else:
                if kind_of not in kinds or (kind_of is str and len(value) > MAX_TEXT):
                    return None
                if kind_of is float and not math.isfinite(value):
                    return None
                key = canonical(value)
                if known and key not in known:
                    return None
                cats.append(key)
        return nums, cats, dates

    def _row(self, record: dict[str, Any]) -> Row:
        """A (validated) record's values as the graph's inputs take them."""
        return (
            [_number(record.get(n)) for n in self.numeric],
            [_category(record.get(n)) for n in self.categorical],
            [_seconds(record.get(n)) for n in self.dates],
        )

    def _feeds(self, rows: list[Row]) -> dict[str, Any]:
        """The graph's inputs. For one row they are this thread's own buffers, filled in
        place and valid until its next call: onnxruntime takes an array it saw before
        faster than a new one (~10 µs of a ~40 µs call)."""
        np = self._np
        names = (("numeric", self.numeric), ("categorical", self.categorical),
                 ("datetime", self.dates))  # fmt: skip
        if len(rows) == 1:
            buffers: dict[str, Any] | None = getattr(self._local, "feeds", None)
            if buffers is None:
                buffers = self._local.feeds = {
                    key: np.empty((1, len(cols)), dtype=object if key == "categorical" else float)
                    for key, cols in names
                    if cols
                }
            for j, (key, cols) in enumerate(names):
                if cols:
                    buffers[key][0] = rows[0][j]
            return buffers
        return {
            key: np.array(
                [r[j] for r in rows], dtype=object if key == "categorical" else float
            ).reshape(len(rows), len(cols))
            for j, (key, cols) in enumerate(names)
            if cols
        }

    def feeds(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        """The graph's inputs for (validated) records (see ``_feeds`` for one record)."""
        return self._feeds([self._row(r) for r in records])

    def raw(self, records: list[dict[str, Any]], allow_unseen: bool = False) -> Any:
        """Probabilities (n×k) or values (n) of ``records``, after validating them."""
        rows = []
        for i, record in enumerate(records):
            row = self._fast_row(record)
            if row is None:  # the full rules: an error names the field, or the row is fine
                self._check(i, record, allow_unseen)
                row = self._row(record)
            rows.append(row)
        return self.session.run(self.outputs, self._feeds(rows))[0]

    def predict(
        self, records: list[dict[str, Any]] | dict[str, Any], allow_unseen: bool = False
    ) -> list[dict[str, Any]]:
        """One answer per record: ``prediction`` (+ ``probabilities`` for classifiers)."""
        batch = [records] if isinstance(records, dict) else list(records)
        out = self.raw(batch, allow_unseen)
        if self.classes is None:
            return [{"prediction": float(v)} for v in out]
        answers = []
        for row in out.tolist():
            best = max(range(len(row)), key=row.__getitem__)
            probs = {str(c): p for c, p in zip(self.classes, row, strict=True)}
            answers.append({"prediction": self.classes[best], "probabilities": probs})
        return answers


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def _category(value: Any) -> str:
    return MISSING if value is None else canonical(value)


def _seconds(value: Any) -> float:
    """Seconds since 1970-01-01T00:00 of the date/time's wall clock (its UTC offset left
    out, as keizoku's encoder reads the parts): the graph's ``datetime`` input."""
    if value is None:
        return math.nan
    stamp = datetime.fromisoformat(value)
    days = stamp.toordinal() - EPOCH_ORDINAL
    return float(days * 86400 + stamp.hour * 3600 + stamp.minute * 60 + stamp.second)


_bundle: list[Bundle] = []


def predict(
    records: list[dict[str, Any]] | dict[str, Any], allow_unseen: bool = False
) -> list[dict[str, Any]]:
    """Score records with the bundle this module lies in (loaded and verified once)."""
    if not _bundle:
        _bundle.append(Bundle(HERE))
    return _bundle[0].predict(records, allow_unseen)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    allow = "--allow-unseen" in args
    files = [a for a in args if a != "--allow-unseen"]
    if len(files) != 1:
        print(
            "usage: python -m runner RECORD.json [--allow-unseen]  (- reads stdin)", file=sys.stderr
        )
        return 2
    try:
        text = sys.stdin.read() if files[0] == "-" else Path(files[0]).read_text()
        payload = json.loads(text)
        answers = predict(payload, allow_unseen=allow)
    except BundleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 5
    except (OSError, ValueError) as exc:  # RecordError, a bad JSON file, an unreadable file
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(answers[0] if isinstance(payload, dict) else answers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
