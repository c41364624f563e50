"""``export_onnx``: a registered version → an edge bundle, proved equal to it, recorded.

The bundle (docs/export.md): ``model.onnx`` (:mod:`keizoku.export.graph`), ``schema.json``
(the REST fields and what each allows), ``labels.json`` (class labels), ``card.json`` (a
model card excerpt), ``parity.json`` (the parity check), ``runner.py``
(:mod:`keizoku.export.runner`, numpy + onnxruntime only) and ``manifest.json`` (the sha256
of every other file). It is written to a temporary folder beside the target and moved in
place only after the parity check passed; the version gets the tag
``keizoku.export.onnx`` and the parity report and manifest as run artifacts.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from keizoku.errors import GateError, IntegrityError, UserInputError, require_extra
from keizoku.export import graph as onnx_graph
from keizoku.export.image import build_image_graph, is_image_model
from keizoku.export.neural import NEURAL_FAMILIES
from keizoku.home import atomic_write_bytes, sha256_file
from keizoku.registry import models as registry
from keizoku.registry.servable import ServableModel

__all__ = [
    "MAX_TOLERANCE",
    "NEURAL_TOLERANCE",
    "PARITY_ROWS",
    "QUANTIZE_FAMILIES",
    "QUANTIZE_MAX_DROP",
    "TOLERANCE",
    "ExportResult",
    "Parity",
    "export_onnx",
    "parity",
    "records_of",
]

TOLERANCE = 1e-5  # |Δ probability| (classifiers); |Δ value| / max(1, |value|) (regression)
NEURAL_TOLERANCE = 1e-4  # the default with a neural member: PyTorch computes in float32
MAX_TOLERANCE = 1e-2  # the loosest --tolerance accepted: beyond it "parity" would mean little
PARITY_ROWS = 1000  # rows of the sample the parity check scores (drawn with seed 0)
QUANTIZE_FAMILIES = {"linear"}  # the families with weights int8 can hold (MatMul)
QUANTIZE_OPS = ["MatMul"]  # what int8 quantizes in a tabular graph; an image CNN's: below
IMAGE_QUANTIZE_OPS = ["Conv", "Gemm", "MatMul"]
QUANTIZE_MAX_DROP = 0.01  # int8: refuse when label agreement with the model drops below 99 %
QUANTIZE_VALUE_TOL = 0.01  # int8 regression: a value "agrees" within 1 % (of max(1, |value|))
FILES = ("model.onnx", "schema.json", "labels.json", "card.json", "parity.json", "runner.py")


@dataclass
class Parity:
    """The bundle's outputs against the registered model's on the same rows."""

    rows: int
    tolerance: float
    max_abs_diff: float
    labels_equal: int  # rows whose label (class, or the value for regression) is the same
    passed: bool
    worst: list[dict[str, Any]]  # the largest differences: row, registered, bundle, diff
    quantize: str | None = None
    agreement: float = 1.0  # share of rows with the same label (the quantized check)


@dataclass
class ExportResult:
    name: str
    version: int
    folder: Path
    parity: Parity
    files: dict[str, str]  # file → sha256
    size_bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.name, "version": self.version, "folder": str(self.folder),
            "parity": asdict(self.parity), "files": self.files, "size_bytes": self.size_bytes,
        }  # fmt: skip


def _require() -> None:
    for module in ("onnx", "onnxruntime", "skl2onnx", "onnxmltools"):
        require_extra(module, "onnx")


def export_onnx(
    ref: str,
    folder: Path,
    sample: pd.DataFrame,
    *,
    quantize: str | None = None,
    tolerance: float | None = None,
) -> ExportResult:
    """Export ``ref`` to ``folder`` after a parity check on ``sample`` (see the module);
    ``tolerance`` tightens (or loosens) the check's largest allowed difference (default
    ``TOLERANCE``, ``NEURAL_TOLERANCE`` when the model has a neural member)."""
    _require()
    if quantize not in (None, "int8"):
        raise UserInputError(f"--quantize {quantize!r} is not supported; use int8 or leave it out.")
    if tolerance is not None and not (math.isfinite(tolerance) and 0 <= tolerance <= MAX_TOLERANCE):
        raise UserInputError(
            f"--tolerance {tolerance!r} is out of range: give a number from 0 to "
            f"{MAX_TOLERANCE:g} (default {TOLERANCE:g})."
        )
    name, version = registry.resolve(ref)
    model = registry.load_model(f"{name}:{version}")
    image = is_image_model(model)
    if tolerance is None:
        neural = image or any(m.family in NEURAL_FAMILIES for m in model.members)
        tolerance = NEURAL_TOLERANCE if neural else TOLERANCE
    _check_target(folder)
    if quantize and not image:
        _check_quantizable(model)
    if image:
        proto = build_image_graph(model, name=f"{name}_{version}")
    else:
        proto = onnx_graph.build_graph(model, name=f"{name}_{version}", for_int8=bool(quantize))
    rows = _sample(sample, model)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        atomic_write_bytes(tmp / "model.onnx", proto.SerializeToString())
        _write_json(tmp / "schema.json", image_schema_json(model) if image else schema_json(model))
        _write_json(tmp / "labels.json", {"task": model.task, "classes": _classes(model)})
        _write_json(tmp / "card.json", card_json(name, version, model, tolerance))
        shutil.copyfile(Path(__file__).with_name("runner.py"), tmp / "runner.py")
        exact = parity(model, tmp, rows, tolerance=tolerance)
        report = exact
        if quantize:
            _quantize(tmp / "model.onnx", IMAGE_QUANTIZE_OPS if image else QUANTIZE_OPS)
            report = parity(model, tmp, rows, quantize=quantize, tolerance=tolerance)
        _write_json(tmp / "parity.json", asdict(report))
        files = {f: sha256_file(str(tmp / f)) for f in FILES}
        _write_json(tmp / "manifest.json", {"files": files, "model": f"{name}:{version}"})
        if not exact.passed:
            raise IntegrityError(_parity_message(name, version, exact), details=asdict(exact))
        if quantize and not report.passed:
            raise GateError(_quantize_message(report), details=asdict(report))
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    manifest_sha = sha256_file(str(folder / "manifest.json"))
    summary = _summary(report, manifest_sha, folder)
    registry.record_export(name, version, "onnx", summary, folder)
    size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
    return ExportResult(name, version, folder, report, files, size)


def _check_target(folder: Path) -> None:
    """Refuse to replace a folder that is not a bundle (a user's files would be lost)."""
    if folder.exists() and (not folder.is_dir() or (
        any(folder.iterdir()) and not (folder / "manifest.json").exists()
    )):  # fmt: skip
        raise UserInputError(
            f"Output '{folder}' exists and is not an export bundle: choose a new or empty "
            "folder with -o DIR (an earlier bundle there is replaced)."
        )


def _check_quantizable(model: ServableModel) -> None:
    bad = sorted({m.family for m in model.members} - QUANTIZE_FAMILIES)
    if bad:
        raise UserInputError(
            f"--quantize int8 applies to {', '.join(sorted(QUANTIZE_FAMILIES))} models and the "
            f"image CNN; this one has {', '.join(bad)}. Export it without --quantize (tree "
            "models gain nothing from int8 weights)."
        )


def _sample(frame: pd.DataFrame, model: ServableModel) -> Any:
    """The parity sample: JSON records as a client sends them, or for an image model the
    images ``frame``'s path column names, read as keizoku reads them (its size, colour)."""
    image = is_image_model(model)
    missing = [c for c in model.feature_names if c not in frame.columns]
    if missing:
        fix = (
            "a CSV of image paths, or run in the image project's folder (its hold-out "
            "images are the sample)" if image else
            "the data the model was trained on (or rows like it)"
        )  # fmt: skip
        raise UserInputError(
            f"The parity sample lacks feature column(s) {', '.join(missing)}: pass --data "
            f"with {fix}."
        )
    if frame.empty:
        raise UserInputError("The parity sample has no rows: pass --data with rows to check.")
    if len(frame) > PARITY_ROWS:
        frame = frame.sample(PARITY_ROWS, random_state=0)
    if image:
        from keizoku.data.images import load_images

        images: Any = model  # keizoku.deep.images.ImageModel
        paths = [str(p) for p in frame[model.feature_names[0]]]
        return load_images(paths, images.size, images.colour)
    return records_of(frame, model.feature_names)


def records_of(frame: pd.DataFrame, names: list[str]) -> list[dict[str, Any]]:
    """The ``names`` columns of ``frame`` as the JSON records a client would send."""
    rows = frame[names].to_dict(orient="records")
    return [{str(k): _plain(v) for k, v in r.items()} for r in rows]


def _plain(value: Any) -> Any:
    """A cell as a JSON client sends it: Python scalars, None for a missing value."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value


def parity(
    model: ServableModel,
    folder: Path,
    records: Any,
    *,
    quantize: str | None = None,
    tolerance: float = TOLERANCE,
) -> Parity:
    """The bundle in ``folder`` against ``model`` on ``records`` (JSON records; an image
    model's pixels) with no manifest needed."""
    from keizoku.export.runner import Bundle, RecordError

    bundle = Bundle(folder, check=False)  # the manifest is written after this check
    if is_image_model(model):
        images: Any = model  # keizoku.deep.images.ImageModel
        ours = np.asarray(images.predict_images(records), dtype=np.float64)
        theirs = np.asarray(bundle.raw(records), dtype=float)
        return _compare(ours, theirs, model.task, quantize, tolerance)
    ours = np.asarray(model.predict_raw_records(records), dtype=float)
    try:
        theirs = np.asarray(bundle.raw(records, allow_unseen=True), dtype=float)
    except RecordError as exc:
        raise UserInputError(
            f"The parity sample has a row the bundle's runner refuses ({exc}); pass --data "
            "with rows as the REST API accepts them (dates as ISO 8601 strings)."
        ) from exc
    return _compare(ours, theirs, model.task, quantize, tolerance)


def _compare(
    ours: np.ndarray, theirs: np.ndarray, task: str, quantize: str | None, tolerance: float
) -> Parity:
    """The parity report of the bundle's outputs ``theirs`` against the model's ``ours``."""
    if task == "regression":
        per_row = np.abs(theirs - ours) / np.maximum(1.0, np.abs(ours))
        same = per_row <= (QUANTIZE_VALUE_TOL if quantize else tolerance)
    else:
        per_row = np.abs(theirs - ours).max(axis=1)
        same = theirs.argmax(axis=1) == ours.argmax(axis=1)
    worst_rows = np.argsort(-per_row)[:5]
    worst = [
        {"row": int(i), "registered": _show(ours[i]), "bundle": _show(theirs[i]),
         "diff": float(per_row[i])}
        for i in worst_rows
    ]  # fmt: skip
    max_diff = float(per_row.max())
    agreement = float(same.mean())
    if quantize:
        passed = agreement >= 1.0 - QUANTIZE_MAX_DROP
    else:
        passed = max_diff <= tolerance and bool(same.all())
    return Parity(
        rows=len(ours), tolerance=tolerance, max_abs_diff=max_diff,
        labels_equal=int(same.sum()), passed=passed, worst=worst, quantize=quantize,
        agreement=agreement,
    )  # fmt: skip


def _show(row: np.ndarray) -> Any:
    return [round(float(v), 8) for v in np.atleast_1d(row)]


def _parity_message(name: str, version: int, p: Parity) -> str:
    worst = "; ".join(
        f"row {w['row']}: registered {w['registered']} vs ONNX {w['bundle']} (Δ {w['diff']:.2g})"
        for w in p.worst[:3]
    )
    return (
        f"ONNX export of {name}:{version} failed its parity check: the largest difference is "
        f"{p.max_abs_diff:.3g} (tolerance {p.tolerance:g}), labels equal on {p.labels_equal} "
        f"of {p.rows} rows. Largest: {worst}. Nothing was written; report it with the model's "
        "families (`keizoku models`), or retrain with another family (--family)."
    )


def _quantize_message(p: Parity) -> str:
    return (
        f"int8 quantization changes the label of {p.rows - p.labels_equal} of {p.rows} rows "
        f"(agreement {p.agreement:.2%}; the limit is {1 - QUANTIZE_MAX_DROP:.0%}). Nothing was "
        "written; export without --quantize."
    )


def _quantize(path: Path, ops: list[str]) -> None:
    """Dynamic int8 quantization of the graph's ``ops`` weights, in place; an error when
    it found nothing to quantize (the bundle would claim int8 and be float)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out = path.with_suffix(".int8.onnx")
    quantize_dynamic(str(path), str(out), weight_type=QuantType.QInt8, op_types_to_quantize=ops)
    found = {n.op_type for n in onnx.load(str(out)).graph.node}
    if not found & {"MatMulInteger", "ConvInteger", "DynamicQuantizeLinear", "DequantizeLinear"}:
        out.unlink()
        raise UserInputError("int8 quantization found no weights to quantize in this model.")
    out.replace(path)


def _summary(p: Parity, manifest_sha: str, folder: Path) -> dict[str, Any]:
    """The version's export tag; ``folder`` is where ``keizoku serve --runtime onnx`` finds it."""
    return {
        "folder": str(folder.resolve()),
        "verified": p.passed, "rows": p.rows, "max_abs_diff": p.max_abs_diff,
        "tolerance": p.tolerance, "quantize": p.quantize, "agreement": p.agreement,
        "manifest_sha256": manifest_sha, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }  # fmt: skip


def _write_json(path: Path, value: Any) -> None:
    atomic_write_bytes(path, (json.dumps(value, indent=2, default=str) + "\n").encode())


def _classes(model: ServableModel) -> list[Any] | None:
    return None if model.task == "regression" else list(model.classes or [])


def schema_json(model: ServableModel) -> dict[str, Any]:
    """The REST fields (name, kind, type, nullable, categories) and the graph's inputs."""
    numeric, categorical, dates = onnx_graph.input_layout(model)
    fields = {
        c.name: {"kind": c.kind, "dtype": c.dtype, "nullable": c.nullable,
                 "categories": c.categories}
        for c in model.schema.features
    }  # fmt: skip
    optional = [c.name for c in model.schema.columns
                if c.role in ("id", "ignored", "sensitive") and c.name not in fields]  # fmt: skip
    return {
        "task": model.task, "numeric": numeric, "categorical": categorical,
        "datetime": dates, "fields": fields, "optional": optional,
        "inputs": {"numeric": "double [N, len(numeric)], NaN when missing",
                   "categorical": "string [N, len(categorical)], canonical text; "
                                  f"{onnx_graph.MISSING!r} when missing",
                   "datetime": "double [N, len(datetime)], seconds since "
                               "1970-01-01T00:00 of the wall-clock time (the UTC offset "
                               "ignored), NaN when missing"},
    }  # fmt: skip


def image_schema_json(model: Any) -> dict[str, Any]:
    """An image model's input: pixels at its size, and how keizoku makes them from a file."""
    height, width = model.size
    shape = [height, width, 3] if model.colour else [height, width]
    return {
        "task": model.task, "numeric": [], "categorical": [], "datetime": [], "fields": {},
        "optional": [], "feature": model.feature_names[0],
        "image": {
            "shape": shape, "colour": "RGB" if model.colour else "grayscale",
            "preprocessing": (
                "decode the PNG/JPEG; convert to " + ("RGB" if model.colour else
                "8-bit grayscale (PIL mode 'L': L = R*299/1000 + G*587/1000 + B*114/1000)")
                + f"; resize to {width}x{height} (width x height) with PIL's bilinear filter "
                "when the size differs (aspect ratio not kept); divide by 255 (float32)"
            ),
        },
        "inputs": {"pixels": f"float [N, {', '.join(map(str, shape))}], values in [0, 1]"},
        "outputs": {"probabilities": "double [N, k], in labels.json's class order",
                    "label": "int64 [N], the class index",
                    "embedding": "float [N, hidden], the penultimate layer"},
    }  # fmt: skip


def card_json(
    name: str, version: int, model: ServableModel, tolerance: float = TOLERANCE
) -> dict[str, Any]:
    """The model card excerpt a device keeps with the model."""
    info = registry.get_version(f"{name}:{version}")
    members = [{"family": m.family, "weight": m.weight} for m in model.members]
    return {
        "model": name, "version": version, "task": model.task, "metric": model.metric,
        "cv_score": info.tags.get("keizoku.cv_score"),
        "members": members or list(model.info.get("members", [])),
        "temperature": float(getattr(model, "temperature", 1.0)),
        "features": model.feature_names, "classes": _classes(model),
        "registered": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(info.created)),
        "tolerance": tolerance,
    }  # fmt: skip
