"""The evidence gate of promotion: a version needs a card and fair enough predictions.

``check_evidence(name, version, spec)`` returns the reasons to refuse promoting
``name:version`` (an empty list means the evidence is fine). ``keizoku promote`` calls
it and writes the reasons to the audit log. Reasons:

- the version has no ``model_card.md`` (it was trained before the evaluation hook);
- the spec sets fairness limits (``fairness:`` section) but the version has no
  ``fairness.json``, or its schema has no sensitive column to measure them on;
- a gap measured at training (cross-validation predictions) exceeds its limit; the
  reason names the column, the gap, its value and the limit.
"""

from __future__ import annotations

import json
from typing import Any

from keizoku.errors import NotFoundError
from keizoku.evaluation.evidence import EVIDENCE_FILES
from keizoku.evaluation.fairness import HasFairness, parse_fairness

__all__ = ["check_evidence", "fairness_reasons"]


def _artifact(name: str, version: int, filename: str) -> Any:
    from keizoku.registry.models import version_artifact

    try:
        return version_artifact(f"{name}:{version}", filename)
    except NotFoundError:
        return None


def fairness_reasons(ref: str, fairness: dict[str, Any], limits: dict[str, float]) -> list[str]:
    """One reason per (sensitive column, gap) whose value exceeds its limit."""
    reasons = []
    source = fairness.get("source", "training predictions")
    for column, body in (fairness.get("columns") or {}).items():
        for gap, limit in limits.items():
            value = (body.get("gaps") or {}).get(gap)
            if value is not None and value > limit:
                reasons.append(
                    f"Version {ref}: fairness gap on sensitive column '{column}': {gap} = "
                    f"{value:.4f} exceeds the limit {limit:g} (spec key fairness.max_{gap}; "
                    f"measured on {source}). Reduce the gap (rebalance or relabel the data, "
                    "drop proxy features) and retrain, or raise the limit."
                )
    return reasons


def check_evidence(name: str, version: int, spec: HasFairness | None) -> list[str]:
    """Reasons to refuse promoting ``name:version``; empty when the evidence is sufficient."""
    ref = f"{name}:{version}"
    reasons = []
    if _artifact(name, version, EVIDENCE_FILES["model_card"]) is None:
        reasons.append(
            f"Version {ref} has no model card (artifact {EVIDENCE_FILES['model_card']}). "
            "Retrain it with `keizoku train`, which writes the card with every version."
        )
    limits = parse_fairness(spec.fairness if spec is not None else None).limits()
    if not limits:
        return reasons
    path = _artifact(name, version, EVIDENCE_FILES["fairness"])
    if path is None:
        reasons.append(
            f"Version {ref} has no fairness evidence (artifact {EVIDENCE_FILES['fairness']}) "
            "but the spec sets fairness limits. Retrain it with `keizoku train`."
        )
        return reasons
    fairness = json.loads(path.read_text())
    if not fairness.get("columns"):
        reasons.append(
            f"The spec sets fairness limits ({', '.join(f'max_{g}' for g in limits)}) but "
            f"version {ref} has no sensitive column to measure them on. Mark one with "
            "`keizoku init --sensitive COL` (or role: sensitive in schema.yaml) and retrain, "
            "or remove the fairness section."
        )
        return reasons
    return reasons + fairness_reasons(ref, fairness, limits)
