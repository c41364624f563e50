"""The MLflow pyfunc wrapper around a ``KeizokuModel``."""

from __future__ import annotations

from typing import Any

import mlflow
import pandas as pd

from keizoku.errors import IntegrityError
from keizoku.registry.models import sha256_file

__all__ = ["KeizokuPyfunc"]


class KeizokuPyfunc(mlflow.pyfunc.PythonModel):  # type: ignore[misc,name-defined]
    """Scores a DataFrame; returns ``prediction`` and ``proba_<class>`` columns."""

    def load_context(self, context: Any) -> None:
        import joblib

        path = context.artifacts["keizoku_model"]
        expected = (context.model_config or {}).get("sha256")
        if expected and sha256_file(path) != expected:
            raise IntegrityError(f"Model file '{path}' does not match its recorded sha256.")
        self.model = joblib.load(path)

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        scored = self.model.score_frame(model_input)
        return scored[[c for c in scored.columns if c == "prediction" or c.startswith("proba_")]]
