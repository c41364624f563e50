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
    return {"true": "true", "false": "false"}.get(text.lower(), text)


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
    def feeds(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        """The graph's inputs for (validated) records. For one record they are this
        thread's own buffers, filled in place and valid until its next call: onnxruntime
        takes an array it saw before faster than a new one (~10 µs of a ~40 µs call)."""
        np = self._np
        if len(records) == 1:
            return self._one(records[0])
        feeds: dict[str, Any] = {}
        if self.numeric:
            numbers = [[_number(r.get(n)) for n in self.numeric] for r in records]
            feeds["numeric"] = np.array(numbers, dtype=np.float64).reshape(len(records), -1)
        if self.categorical:
            texts = [[_category(r.get(n)) for n in self.categorical] for r in records]
            feeds["categorical"] = np.array(texts, dtype=object).reshape(len(records), -1)
        if self.dates:
            stamps = [[_seconds(r.get(n)) for n in self.dates] for r in records]
            feeds["datetime"] = np.array(stamps, dtype=np.float64).reshape(len(records), -1)
        return feeds

    def _one(self, record: dict[str, Any]) -> dict[str, Any]:
        buffers: dict[str, Any] | None = getattr(self._local, "feeds", None)
        if buffers is None:
            np = self._np
            buffers = {}
            if self.numeric:
                buffers["numeric"] = np.empty((1, len(self.numeric)), dtype=np.float64)
            if self.categorical:
                buffers["categorical"] = np.empty((1, len(self.categorical)), dtype=object)
            if self.dates:
                buffers["datetime"] = np.empty((1, len(self.dates)), dtype=np.float64)
            self._local.feeds = buffers
        if self.numeric:
            buffers["numeric"][0] = [_number(record.get(n)) for n in self.numeric]
        if self.categorical:
            buffers["categorical"][0] = [_category(record.get(n)) for n in self.categorical]
        if self.dates:
            buffers["datetime"][0] = [_seconds(record.get(n)) for n in self.dates]
        return buffers

    def raw(self, records: list[dict[str, Any]], allow_unseen: bool = False) -> Any:
        """Probabilities (n×k) or values (n) of ``records``, after validating them."""
        for i, record in enumerate(records):
            self._check(i, record, allow_unseen)
        return self.session.run(self.outputs, self.feeds(records))[0]

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
