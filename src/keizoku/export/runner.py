"""Run a keizoku edge bundle: needs only numpy and onnxruntime (and Python's standard library).

``python -m runner record.json`` (a record or a list of records; ``-`` reads stdin) prints
the predictions as JSON; ``from runner import predict; predict([record, ...])`` returns them.
An image model's bundle takes pixels instead of records: ``python -m runner image.npy``
(or a JSON nested list, or a PNG/JPEG file when Pillow is installed) and ``predict(pixels)``
with one image (height × width, × 3 for RGB) or a batch of them, at the model's size, in
[0, 1] (``schema.json``'s ``image`` says which).
Before anything runs, every file of the bundle is checked against the sha256 recorded in
``manifest.json``: a changed or missing file is refused. Records are validated as keizoku's
REST API validates them: every feature is required, types are checked, an unseen category
is an error unless ``allow_unseen`` (then it is scored as the model scores an unknown value).

Exit codes of the command: 0 done, 2 a bad record, image or file, 5 a tampered bundle.
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
IMAGE_FILES = (".npy", ".png", ".jpg", ".jpeg")  # read as images by an image bundle
_TYPES: dict[str, tuple[type, ...]] = {"str": (str,), "bool": (bool,)}  # else numbers
_BOOLEANS = {"true": "true", "false": "false"}
_ABSENT = object()
Row = tuple[list[float], list[str], list[float]]  # numeric, categorical, datetime values
_Field = tuple[str, bool]  # name, nullable
_Category = tuple[str, bool, tuple[type, ...], dict[Any, str], set[str]]
_Plan = tuple[list[_Field], list[_Category], list[_Field]]
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
        self.image: dict[str, Any] | None = self.schema.get("image")  # an image model's input
        self.numeric: list[str] = self.schema["numeric"]
        self.categorical: list[str] = self.schema["categorical"]
        self.dates: list[str] = self.schema.get("datetime", [])
        self.fields: dict[str, dict[str, Any]] = self.schema["fields"]
        self.optional = set(self.schema.get("optional", []))
        self.known = {
            n: {canonical(c) for c in f.get("categories") or []} for n, f in self.fields.items()
        }
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # one record: a thread pool costs more than it saves
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(
            str(self.folder / "model.onnx"), options, providers=["CPUExecutionProvider"]
        )
        self.outputs = ["value"] if self.classes is None else ["probabilities"]
        self.image_shape = () if self.image is None else tuple(self.image["shape"])
        self._labels = None if self.classes is None else [str(c) for c in self.classes]
        # the feeds are built here to the graph's inputs: the session's own run (the
        # Python wrapper's checks of the feed's names cost ~4 µs a call); the wrapper's
        # when this onnxruntime has no such method
        self._run = getattr(getattr(self.session, "_sess", None), "run", None)
        self._np = np
        self._local = threading.local()  # per thread: one record's input buffers
        self._inputs = [
            (key, cols)
            for key, cols in (("numeric", self.numeric), ("categorical", self.categorical),
                              ("datetime", self.dates))
            if cols
        ]  # fmt: skip
        self._plan = self._fast_plan()

    def _fast_plan(self) -> _Plan | None:
        """The fast path's view of the fields: (name, nullable) of the numeric and datetime
        ones, (name, nullable, JSON types, {value: canonical text} of its seen categories,
        seen categories) of the categorical ones, each in the graph's input order; None
        when the fields do not line up with the graph's inputs (then no fast path)."""
        fields = self.fields
        kinds = [(n, f["kind"]) for n, f in fields.items()]
        nums = [n for n, k in kinds if k == "numeric"]
        cats = [n for n, k in kinds if k not in ("numeric", "datetime")]
        dates = [n for n, k in kinds if k == "datetime"]
        if (nums, cats, dates) != (self.numeric, self.categorical, self.dates):
            return None
        return (
            [(n, bool(fields[n]["nullable"])) for n in nums],
            [
                (n, bool(fields[n]["nullable"]), _TYPES.get(fields[n]["dtype"], (int, float)),
                 _seen_values(self.known[n], fields[n]["dtype"]), self.known[n])
                for n in cats
            ],
            [(n, bool(fields[n]["nullable"])) for n in dates],
        )  # fmt: skip

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
        plan = self._plan
        if type(record) is not dict or plan is None or len(record) != len(self.fields):
            return None
        get = record.get
        nums: list[float] = []
        for name, nullable in plan[0]:
            value = get(name, _ABSENT)
            kind_of = type(value)
            if kind_of is float or kind_of is int:
                if not -MAX_ABS <= value <= MAX_ABS:
                    return None  # also NaN and ±inf (no comparison holds)
                nums.append(value)
            elif value is None and nullable:
                nums.append(math.nan)
            else:
                return None
        cats: list[str] = []
        for name, nullable, kinds, seen, known in plan[1]:
            value = get(name, _ABSENT)
            if type(value) in kinds:
                key = seen.get(value) or _seen_key(value, known)
                if key is None:
                    return None
                cats.append(key)
            elif value is None and nullable:
                cats.append(MISSING)
            else:
                return None
        dates: list[float] = []
        for name, nullable in plan[2]:
            value = get(name, _ABSENT)
            if type(value) is str:
                try:
                    dates.append(_seconds(value))
                except ValueError:
                    return None
            elif value is None and nullable:
                dates.append(math.nan)
            else:
                return None
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
        at = {"numeric": 0, "categorical": 1, "datetime": 2}
        if len(rows) == 1:
            buffers: dict[str, Any] | None = getattr(self._local, "feeds", None)
            if buffers is None:
                buffers = self._local.feeds = {
                    key: np.empty((1, len(cols)), dtype=object if key == "categorical" else float)
                    for key, cols in self._inputs
                }
            row = rows[0]
            for key, _ in self._inputs:
                buffers[key][0] = row[at[key]]
            return buffers
        return {
            key: np.array(
                [r[at[key]] for r in rows], dtype=object if key == "categorical" else float
            ).reshape(len(rows), len(cols))
            for key, cols in self._inputs
        }

    def feeds(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        """The graph's inputs for (validated) records (see ``_feeds`` for one record)."""
        return self._feeds([self._row(r) for r in records])

    def raw(self, records: list[dict[str, Any]], allow_unseen: bool = False) -> Any:
        """Probabilities (n×k) or values (n) of ``records``, after validating them (an
        image bundle: of the images ``records``, as :meth:`pixels` takes them)."""
        if self.image is not None:
            return self.run({"pixels": self.pixels(records)})
        rows = []
        for i, record in enumerate(records):
            row = self._fast_row(record)
            if row is None:  # the full rules: an error names the field, or the row is fine
                self._check(i, record, allow_unseen)
                row = self._row(record)
            rows.append(row)
        return self.run(self._feeds(rows))

    def run(self, feeds: dict[str, Any]) -> Any:
        """The graph's first output for ``feeds`` (as ``_feeds`` builds them)."""
        if self._run is not None:
            try:
                return self._run(self.outputs, feeds, None)[0]
            except TypeError:  # another onnxruntime's signature: the public wrapper from now
                self._run = None
        return self.session.run(self.outputs, feeds)[0]

    def predict(self, records: Any, allow_unseen: bool = False) -> list[dict[str, Any]]:
        """One answer per record (a record, or a list of them): ``prediction`` (+
        ``probabilities`` for classifiers); an image bundle: per image (see :meth:`pixels`)."""
        batch = records if self.image is not None else _batch(records)
        out = self.raw(batch, allow_unseen)
        if self._labels is None:
            return [{"prediction": v} for v in out.tolist()]
        classes, labels = self.classes, self._labels
        answers = []
        for row in out.tolist():
            best = row.index(max(row))
            probabilities = dict(zip(labels, row, strict=True))
            answers.append({"prediction": classes[best], "probabilities": probabilities})
        return answers

    # ----------------------------------------------------------------------- images
    def pixels(self, images: Any) -> Any:
        """An image bundle's input: ``images`` (one image, a batch, or a path of an ``.npy``
        or, with Pillow, a PNG/JPEG file) as float32 [N, *image_shape], checked."""
        np = self._np
        shape = self.image_shape
        what = "x".join(map(str, shape[:2])) + (" RGB" if len(shape) == 3 else " grayscale")
        fix = (f"send {what} pixels scaled to [0, 1] (resized and converted as "
               "schema.json's image.preprocessing says)")  # fmt: skip
        if isinstance(images, str | Path):
            images = self.read_image(images)
        try:
            batch = np.asarray(images, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise RecordError(f"pixels: not an array of numbers ({exc}); {fix}.") from exc
        if batch.shape == shape:
            batch = batch[None]
        if batch.ndim != len(shape) + 1 or batch.shape[1:] != shape or not len(batch):
            raise RecordError(
                f"pixels: shape {list(batch.shape)}, expected {list(shape)} (one image) or "
                f"[N, {', '.join(map(str, shape))}] (a batch); {fix}."
            )
        if not np.isfinite(batch).all():
            raise RecordError(f"pixels: a value is NaN or infinite; {fix}.")
        low, high = float(batch.min()), float(batch.max())
        if low < 0.0 or high > 1.0:
            hint = " (divide 0-255 values by 255)" if high > 1.0 and low >= 0.0 else ""
            raise RecordError(
                f"pixels: values from {low:g} to {high:g}, expected [0, 1]{hint}; {fix}."
            )
        return np.ascontiguousarray(batch)

    def read_image(self, path: str | Path) -> Any:
        """The pixels of an ``.npy`` file, or of a PNG/JPEG file read as keizoku reads
        images (``keizoku.data.images.load_image``: grayscale "L" or "RGB", resized
        bilinearly to the model's size when it differs, divided by 255); needs Pillow."""
        np = self._np
        path = Path(path)
        if path.suffix.lower() == ".npy":
            return np.load(path, allow_pickle=False)
        try:
            from PIL import Image, UnidentifiedImageError
        except ImportError as exc:
            raise RecordError(
                f"{path}: reading a PNG/JPEG file needs Pillow (pip install Pillow); or send "
                "the pixels as an .npy file or a JSON list."
            ) from exc
        height, width = self.image_shape[:2]
        try:
            with Image.open(path) as img:
                if img.format not in ("PNG", "JPEG"):
                    raise RecordError(f"{path}: {img.format} is not PNG or JPEG; convert it.")
                pixels = img.convert("RGB" if len(self.image_shape) == 3 else "L")
                if pixels.size != (width, height):
                    pixels = pixels.resize((width, height), Image.Resampling.BILINEAR)
                return np.asarray(pixels, dtype=np.float32) / 255.0
        except (UnidentifiedImageError, SyntaxError) as exc:
            raise RecordError(f"{path}: corrupt or not an image; send a PNG or JPEG.") from exc

    def embedding(self, images: Any) -> Any:
        """An image bundle's penultimate layer (n × hidden) for ``images``."""
        return self.session.run(["embedding"], {"pixels": self.pixels(images)})[0]


def _batch(records: Any) -> list[Any]:
    return [records] if isinstance(records, dict) else list(records)


def _seen_values(known: set[str], dtype: str) -> dict[Any, str]:
    """{a JSON value of the field's type: its canonical text} for each seen category whose
    canonical text gives that value back (``"3"`` → 3 for a number field; 3.0 finds it too)."""
    seen: dict[Any, str] = {}
    for text in known:
        value: Any = text
        if dtype == "bool":
            value = {"true": True, "false": False}.get(text)
        elif dtype != "str":
            try:
                number = float(text)
            except ValueError:
                continue
            value = int(number) if number.is_integer() else number
        if value is not None and canonical(value) == text:
            seen[value] = text
    return seen


def _seen_key(value: Any, known: set[str]) -> str | None:
    """A value of the field's type that ``_seen_values`` does not list: its canonical text
    when it is seen (or the field lists no categories), None when it needs the full rules."""
    if type(value) is str and len(value) > MAX_TEXT:
        return None
    if type(value) is float and not math.isfinite(value):
        return None
    key = canonical(value)
    return key if not known or key in known else None


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


def _loaded() -> Bundle:
    """The bundle this module lies in (loaded and verified once)."""
    if not _bundle:
        _bundle.append(Bundle(HERE))
    return _bundle[0]


def predict(records: Any, allow_unseen: bool = False) -> list[dict[str, Any]]:
    """Score records (an image bundle: images) with the bundle this module lies in."""
    return _loaded().predict(records, allow_unseen)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    allow = "--allow-unseen" in args
    files = [a for a in args if a != "--allow-unseen"]
    if len(files) != 1:
        print(
            "usage: python -m runner RECORD.json [--allow-unseen]  (- reads stdin; an image "
            "model: IMAGE.npy|.png|.jpg or PIXELS.json)",
            file=sys.stderr,
        )
        return 2
    try:
        bundle = _loaded()
        if bundle.image is not None and Path(files[0]).suffix.lower() in IMAGE_FILES:
            payload: Any = bundle.read_image(files[0])
        else:
            text = sys.stdin.read() if files[0] == "-" else Path(files[0]).read_text()
            payload = json.loads(text)
        answers = bundle.predict(payload, allow_unseen=allow)
        if bundle.image is not None:
            single = bundle._np.ndim(payload) == len(bundle.image_shape)
        else:
            single = isinstance(payload, dict)
    except BundleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 5
    except (OSError, ValueError) as exc:  # RecordError, a bad JSON file, an unreadable file
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(answers[0] if single else answers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
