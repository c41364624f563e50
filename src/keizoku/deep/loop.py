"""An image classifier through the loop: train the CNN, register, gate against the champion.

``keizoku train`` on a spec with an ``images:`` section enters here (``train_images_gated``).
A fixed share of the images (``images.holdout``, chosen per file name and label, so the same
images stay out as the data grows) is never trained on. The CNN is trained on the rest with
early stopping on a validation split; ``max_trials`` widths from ``images.channels`` are
tried and the best on validation is kept. The first version becomes champion; a later one
passes its gate when its hold-out accuracy is at least the champion's plus
``retraining.gates.min_gain``. Every move goes through ``keizoku.lifecycle.state.transition``
(audited), as for tabular models.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from keizoku import audit
from keizoku.data.images import image_size, load_images
from keizoku.deep.images import (
    EMBED_PCS,
    ImageModel,
    fit_embedding_pca,
    image_schema,
    image_table,
)
from keizoku.deep.spec import ImagesSpec
from keizoku.errors import ConflictError, UserInputError
from keizoku.evaluation.evidence import EVIDENCE_FILES, write_json
from keizoku.lifecycle.gates import GateCheck, GateReport
from keizoku.lifecycle.policy import parse_policy
from keizoku.lifecycle.retrain import (
    Admission,
    RetrainOutcome,
    Trigger,
    TriggerKind,
    _undo_candidate,
    admit_candidate,
    record_retrain,
)
from keizoku.spec import Spec, load_spec

__all__ = ["EpochReport", "ImageOutcome", "holdout_mask", "retrain_images", "train_images_gated"]


@dataclass
class ImageOutcome:
    name: str
    version: int
    model: ImageModel
    trials: list[dict[str, Any]]
    holdout_accuracy: float
    data_sha256: str
    phases: dict[str, float] = field(default_factory=dict)


def images_spec(spec: Spec) -> ImagesSpec:
    if spec.images is None:
        raise UserInputError(
            "This spec has no images: section; `keizoku init DIR --target label` on a folder "
            "of class subfolders writes one."
        )
    return spec.images


def holdout_mask(table: pd.DataFrame, share: float) -> np.ndarray:
    """True for the images kept out of training: fixed per file name and label."""
    keys = (table["label"].astype(str) + "/" + table["path"].map(lambda p: Path(p).name)).tolist()
    draws = [int(hashlib.sha256(k.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF for k in keys]
    return np.asarray(draws) < share


def _data_sha(table: pd.DataFrame) -> str:
    digest = hashlib.sha256()
    for path, label in zip(table["path"], table["label"], strict=True):
        digest.update(str(label).encode() + b"\0" + Path(path).read_bytes())
    return digest.hexdigest()


VALIDATION = 0.15  # share of the training images that early stopping and the trials read

# ``on_epoch(trial, channels, epoch, max_epochs, train_loss, val_loss)``: progress only.
EpochReport = Callable[[int, int, int, int, float, float | None], None]


def _fit(
    x: np.ndarray,
    y: np.ndarray,
    ims: ImagesSpec,
    max_trials: int | None,
    seed: int,
    on_epoch: EpochReport | None = None,
) -> tuple[Any, list[dict[str, Any]]]:
    """The best ``ImageCNN`` on a validation split, and one row per trial."""
    from sklearn.model_selection import train_test_split

    from keizoku.deep.cnn import ImageCNN

    fit_i, val_i = train_test_split(
        np.arange(len(y)), test_size=VALIDATION, stratify=y, random_state=seed
    )
    trials, best, best_acc = [], None, -1.0
    for number, channels in enumerate(ims.channels[: max_trials or len(ims.channels)]):
        started = time.monotonic()
        cnn = ImageCNN(channels=channels, max_epochs=ims.epochs, patience=ims.patience, seed=seed)
        report = None
        if on_epoch is not None:

            def report(epoch: int, train: float, val: float | None, n: int = number,
                       c: int = channels) -> bool:  # fmt: skip
                on_epoch(n, c, epoch, ims.epochs, train, val)
                return False  # never asks to stop: early stopping stays the CNN's

        cnn.fit(x[fit_i], y[fit_i], eval_set=(x[val_i], y[val_i]), on_epoch=report)
        acc = float(np.mean(cnn.predict(x[val_i]) == y[val_i]))
        trials.append({"number": number, "channels": channels, "val_accuracy": acc,
                       "epochs": int(cnn.best_epoch_ or len(cnn.history_)),
                       "fit_time_s": time.monotonic() - started})  # fmt: skip
        if acc > best_acc:
            best, best_acc = cnn, acc
    return best, trials


def _reference(
    model: ImageModel,
    images: np.ndarray,
    sizes: list[tuple[int, int]],
    embedding: np.ndarray,
    folder: Path,
) -> dict[str, Path]:
    """``reference.json`` (and its row sample): the training images' features
    (``ImageModel.image_features``) as numeric features, so ``keizoku monitor`` compares
    them with those the serving route logs."""
    from keizoku.data.schema import Column
    from keizoku.monitoring.reference import (
        REFERENCE_FILE,
        SAMPLE_FILE,
        build_reference,
        reference_sample,
    )

    stats = model.image_features(images, sizes, embedding)
    columns = [Column(name=c, kind="numeric") for c in stats.columns]
    target = Column(name=str(model.schema.target), kind="categorical", role="target")
    schema = model.schema.model_copy(update={"columns": [*columns, target]})
    ref = build_reference(stats, schema, oof=None, metric="accuracy", greater_is_better=True,
                          cv_score=float(model.info["val_accuracy"]))  # fmt: skip
    path, sample = folder / REFERENCE_FILE, folder / SAMPLE_FILE
    path.write_text(ref.model_dump_json(indent=1))
    reference_sample(stats, list(ref.features)).to_parquet(sample, index=False)
    return {"reference": path, "reference_sample": sample}


def _holdout_evaluation(
    model: ImageModel, images: np.ndarray, labels: np.ndarray, rows: pd.DataFrame, column: str
) -> dict[str, Any] | None:
    """What ``keizoku report`` shows of an image version: its metrics, curves and confusion
    matrix on the hold-out images (never trained on), and the epochs' losses."""
    from keizoku.evaluation.metrics import evaluate_predictions

    if not len(labels):
        return None
    classes = [str(c) for c in model.cnn.classes_]
    codes = np.asarray([classes.index(str(v)) for v in labels])
    frame = pd.DataFrame({column: rows["path"].to_numpy()})
    out = evaluate_predictions(model.task, codes, model.predict_images(images), classes, frame,
                               model.schema, "hold-out images (never trained on)")  # fmt: skip
    out["epoch_curve"] = {
        "history": [list(h) for h in model.cnn.history_],
        "best_epoch": model.cnn.best_epoch_,
        "family": f"image_cnn, {model.cnn.channels} channels",
    }
    return out


def _register(
    name: str,
    model: ImageModel,
    trials: list[dict[str, Any]],
    data_sha: str,
    images: np.ndarray,
    sizes: list[tuple[int, int]],
    embedding: np.ndarray,
    evidence: dict[str, Any],
) -> int:
    """Register ``model`` with its files; ``evidence``: the hold-out evaluation (or None),
    the attribution maps and the model card."""
    from keizoku.evaluation.image_explain import IMAGE_EXPLANATIONS
    from keizoku.registry.tracking import TrainingRun

    params = {"task": model.task, "input": "images", "rows": model.info["rows"],
              "size": "x".join(map(str, model.size))}  # fmt: skip
    with TrainingRun(name, params=params) as run:
        for t in trials:
            metrics = {"cv_score": t["val_accuracy"], "fit_time_s": t["fit_time_s"]}
            run.log_trial(t["number"], "image_cnn", {"channels": t["channels"]}, metrics, "ok")
        run.log_metrics({"val_accuracy": model.info["val_accuracy"],
                         "holdout_accuracy": model.info["holdout_accuracy"]})  # fmt: skip
        with tempfile.TemporaryDirectory(prefix="keizoku-img-") as tmp:
            folder = Path(tmp)
            model.schema.save(folder / "schema.yaml")
            pd.DataFrame(trials).to_csv(folder / "leaderboard.csv", index=False)
            (folder / "training.json").write_text(json.dumps(model.info, indent=2, default=str))
            names = (("schema", "yaml"), ("leaderboard", "csv"), ("training", "json"))
            files = {n: folder / f"{n}.{e}" for n, e in names}
            files.update(_reference(model, images, sizes, embedding, folder))
            if evidence["evaluation"] is not None:
                files["evaluation"] = write_json(
                    folder / EVIDENCE_FILES["evaluation"], evidence["evaluation"]
                )
            files["image_explanations"] = write_json(
                folder / IMAGE_EXPLANATIONS, evidence["explanations"]
            )
            files["model_card"] = folder / EVIDENCE_FILES["model_card"]
            files["model_card"].write_text(evidence["card"])
            tags = {
                "keizoku.data_sha256": data_sha,
                "keizoku.schema_sha256": model.schema.fingerprint(),
                "keizoku.metric": "accuracy",
                "keizoku.cv_score": f"{model.info['val_accuracy']:.6g}",
                "keizoku.task": model.task,
                "keizoku.members": "image_cnn",
            }
            return run.register(model, files, tags)


MONITORED = ("brightness", "contrast", "dark_share", "width", "height",
             *(f"emb_pc{j + 1}" for j in range(EMBED_PCS)))  # fmt: skip


def _describe(
    cnn: Any, ims: ImagesSpec, table: pd.DataFrame, held: np.ndarray, trials: list[dict[str, Any]]
) -> dict[str, Any]:
    """What the model card says of the data, the network and how it was trained."""
    labels = table["label"].astype(str)
    counts = {str(c): {"training": int(((labels == c) & ~held).sum()),
                       "holdout": int(((labels == c) & held).sum())}
              for c in ims.classes or sorted(labels.unique())}  # fmt: skip
    parameters = sum(int(np.prod(v.shape)) for v in cnn.net_.state_dict().values()
                     if v.dtype.is_floating_point)  # fmt: skip
    return {
        "images": {"source": ims.source, "size": list(ims.size), "colour": ims.colour,
                   "class_counts": counts},
        "architecture": {**cnn.arch_, "parameters": parameters, "weights": cnn.weights},
        "recipe": {"max_epochs": cnn.max_epochs, "patience": cnn.patience, "lr": cnn.lr,
                   "weight_decay": cnn.weight_decay, "batch_size": cnn.batch_size,
                   "augmentation": {"rotate": cnn.rotate, "shift": cnn.shift,
                                    "noise": cnn.noise},
                   "trials": [t["channels"] for t in trials], "validation_share": VALIDATION,
                   "holdout_share": ims.holdout},
        "monitor": list(MONITORED),
    }  # fmt: skip


def _evidence(
    model: ImageModel,
    x: np.ndarray,
    y: np.ndarray,
    held: np.ndarray,
    table: pd.DataFrame,
    column: str,
    base: Path,
) -> dict[str, Any]:
    """The hold-out evaluation, the attribution maps (``keizoku report``) and the card."""
    from keizoku.evaluation.card import intended_use, lineage, render_image_card
    from keizoku.evaluation.image_explain import attribution_evidence

    evaluation = _holdout_evaluation(model, x[held], y[held], table[held], column)
    names = [Path(p).name for p in table["path"]]
    started = time.monotonic()
    explanations = attribution_evidence(model, x, y, held, names)
    explanations["seconds"] = round(time.monotonic() - started, 3)
    name = str(model.info["project"])
    versions = lineage(name)
    upcoming = max((v["version"] for v in versions), default=0) + 1
    card = render_image_card(model.info, evaluation, explanations, versions, upcoming,
                             intended_use(base))  # fmt: skip
    return {"evaluation": evaluation, "explanations": explanations, "card": card}


def train_images_gated(
    spec_path: str | Path = "keizoku.yaml",
    *,
    overrides: dict[str, Any] | None = None,
    actor: str | None = None,
    reason: str = "",
    on_epoch: EpochReport | None = None,
) -> tuple[ImageOutcome, Admission]:
    """Train the CNN per the spec, register it and gate it (see the module docstring);
    ``on_epoch`` hears of every finished epoch of every trial."""
    from keizoku.names import check_name
    from keizoku.registry.models import delete_version

    clock = time.monotonic()
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    spec, base = load_spec(spec_path)
    check_name(spec.project, "Project name")
    ims = images_spec(spec)
    source = Path(spec.data.path or ".")
    table = image_table(source if source.is_absolute() else base / source, ims, spec.target)
    held = holdout_mask(table, ims.holdout)
    x = load_images(table["path"].tolist(), ims.size, ims.colour)
    y = table["label"].astype(str).to_numpy()
    seed = int(given.get("seed") or spec.train.seed or 0)
    cnn, trials = _fit(x[~held], y[~held], ims, given.get("max_trials"), seed, on_epoch)
    hold_acc = float(np.mean(cnn.predict(x[held]) == y[held])) if held.any() else float("nan")
    info = {"family": "image_cnn", "rows": int((~held).sum()), "holdout_rows": int(held.sum()),
            "val_accuracy": max(t["val_accuracy"] for t in trials), "holdout_accuracy": hold_acc,
            "channels": cnn.channels, "best_epoch": cnn.best_epoch_,
            "history": cnn.history_}  # fmt: skip
    embedding = cnn.embed(x[~held])  # the training images' penultimate layer, computed once
    info["embedding_pca"] = fit_embedding_pca(embedding)
    schema = image_schema(ims, spec.target)
    members = [{"family": "image_cnn", "weight": 1}]
    data_sha = _data_sha(table[~held])
    name = spec.project
    info.update(task=schema.task, target=spec.target, metric="accuracy",
                cv_score=info["val_accuracy"], members=members, project=name,
                data_sha256=data_sha, schema_sha256=schema.fingerprint(),
                trained_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                **_describe(cnn, ims, table, held, trials))  # fmt: skip
    model = ImageModel(schema, ims.size, cnn, info)
    evidence = _evidence(model, x, y, held, table, ims.path_column, base)
    sizes = [image_size(p) for p in table["path"][~held]]
    version = _register(name, model, trials, data_sha, x[~held], sizes, embedding, evidence)
    outcome = ImageOutcome(name, version, model, trials, hold_acc, data_sha,
                           {"train": time.monotonic() - clock})  # fmt: skip
    try:
        audit.record(
            name, "register", actor=actor, reason=reason, version=version,
            evidence={"data_sha256": data_sha, "schema_sha256": model.schema.fingerprint(),
                      "cv_score": info["val_accuracy"], "metric": "accuracy"},
        )  # fmt: skip
        gates = parse_policy(spec.retraining).gates
        admission = admit_candidate(
            name, version, lambda champion: _holdout_gate(
                name, version, champion, x[held], y[held], gates.min_gain
            ), actor=actor, reason=reason,
        )  # fmt: skip
    except BaseException as exc:
        _undo_candidate(name, version, actor, exc, delete_version)
        raise
    outcome.phases["gates"] = time.monotonic() - clock - outcome.phases["train"]
    return outcome, admission


def _holdout_gate(
    name: str, version: int, champion: int, x: np.ndarray, y: np.ndarray, min_gain: float
) -> tuple[GateReport, dict[str, Any]]:
    from keizoku.registry.models import load_model

    cand, champ = load_model(f"{name}:{version}"), load_model(f"{name}:{champion}")
    if not isinstance(champ, ImageModel) or not isinstance(cand, ImageModel):
        raise ConflictError(
            f"{name}:{champion} (champion) is not an image model; an image version cannot be "
            "gated against it. Use a new project name for the image project."
        )
    ours = float(np.mean(np.asarray(cand.labels(cand.predict_images(x))) == y))
    theirs = float(np.mean(np.asarray(champ.labels(champ.predict_images(x))) == y))
    threshold = theirs + min_gain
    check = GateCheck(
        "metric", ours >= threshold, ours, threshold,
        f"hold-out accuracy {ours:.4f} vs the champion's {theirs:.4f} on {len(y)} image(s)"
        + ("" if ours >= threshold else ": not better"),
    )  # fmt: skip
    stats = {"metric": "accuracy", "candidate": ours, "champion": theirs, "n": len(y)}
    return GateReport([check]), stats


def retrain_images(
    name: str, spec_path: str | Path, champion: int, *, force: bool, actor: str | None
) -> RetrainOutcome:
    """``keizoku retrain`` for an image champion: a trigger (``--force``, or drift of the
    logged images' statistics in the ``monitoring.window``), then train on the images now
    in the project's folder or list, gate on the fixed hold-out, audit."""
    from keizoku.duration import parse_duration
    from keizoku.monitoring.monitor import drift_config, monitor

    spec, _ = load_spec(spec_path)
    outcome = RetrainOutcome(name, "skipped", champion)
    if force:
        outcome.triggers = [Trigger(TriggerKind.FORCED, "forced (--force)")]
    else:
        cfg = drift_config(spec.monitoring)
        report = monitor(name, version=champion, since_s=parse_duration(cfg.window), config=cfg,
                         estimate=False)  # fmt: skip
        if report.any_drift:
            shown = ", ".join(report.drifted)
            outcome.triggers = [Trigger(TriggerKind.DRIFT, f"served images drifted: {shown}")]
    if not outcome.triggers:
        outcome.reasons = ["no trigger fired"]
        return outcome
    because = "; ".join(map(str, outcome.triggers))
    trained, admission = train_images_gated(spec_path, actor=actor, reason=because)
    rows = {"images": trained.model.info["rows"]}
    return record_retrain(outcome, trained.version, admission, rows, because, actor)
