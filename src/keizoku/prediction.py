"""``Prediction``: what scoring one record returns, typed once for every reader.

The server builds one per record (``keizoku.serving.fastpath.score``) and serialises it
twice: ``to_response()`` for the HTTP answer and ``log_fields()`` for the prediction log
(``keizoku.monitoring.log``), whose readers then find typed columns instead of guessing
(``prediction`` is the canonical label text, ``probabilities`` JSON text, ``score`` the
positive-class probability of a binary model, the top probability of a multiclass one,
the value of a regression, or a clustering's distance to the assigned centre).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from keizoku.data.labels import canonical

__all__ = ["Prediction"]


@dataclass(slots=True)
class Prediction:
    """One record's answer: the label (or value), its probabilities, who answered."""

    prediction: Any  # the class as the schema stores it, or the value (None if not finite)
    probabilities: dict[str, float] | None  # class text → probability; None for regression
    score: float | None  # binary: P(positive class); multiclass: the top probability;
    # regression: the value; clustering: the distance to the assigned centre
    version: int
    variant: str
    request_id: str
    entity_id: Any = None
    distance: float | None = None  # clustering: to the assigned cluster's centre (also score)

    def to_response(self) -> dict[str, Any]:
        """The JSON object of one prediction in a response."""
        out: dict[str, Any] = {"request_id": self.request_id, "prediction": self.prediction}
        if self.probabilities is not None:
            out["probabilities"] = self.probabilities
        if self.distance is not None:
            out["distance"] = self.distance
        out["version"] = self.version
        out["variant"] = self.variant
        if self.entity_id is not None:
            out["entity_id"] = self.entity_id
        return out

    def log_fields(self) -> dict[str, Any]:
        """The prediction columns of the log: text label, JSON probabilities, numeric score."""
        if self.prediction is None:
            text = None
        elif self.probabilities is None:
            text = canonical(float(self.prediction))
        else:
            text = canonical(self.prediction)
        probs = None if self.probabilities is None else json.dumps(self.probabilities)
        return {"prediction": text, "probabilities": probs, "score": self.score}
