"""``TabularEncoder``: schema-driven feature encoding with a pandas-free fast path.

One fitted object turns raw columns into the model's numeric matrix: numbers
(median-imputed, optionally standardised, with missing indicators), categories
(ordinal codes for trees, one-hot for linear models), booleans, datetime parts
and text (TF-IDF over keizoku's English + Japanese tokens, plus MiniLM sentence
embeddings when the column asks for them; docs/text.md). ``transform`` works on a
DataFrame (training, batch scoring); ``transform_records`` works on plain dicts
(serving) and returns the same matrix without building a DataFrame, which is what
keeps one-row latency near the model's own cost.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from keizoku.data.labels import canonical, canonical_codes, canonical_counts, is_missing
from keizoku.data.schema import Column
from keizoku.features import textcol

__all__ = ["TabularEncoder"]

Mode = Literal["ordinal", "onehot"]
DATE_PARTS = ("year", "month", "day", "day_of_week", "hour")
# TF-IDF terms per text column for tree models (was 50: LightGBM's 5-fold accuracy rose from
# 0.32 to 0.51 on the tickets and 0.665 to 0.732 on JSQuAD questions → article at 200; 1,000
# gave 0.51 and 0.721; decision 20, s7)
TREE_TERMS = 200
TRUE_TOKENS = {"true", "t", "yes", "y", "1", "1.0"}
FALSE_TOKENS = {"false", "f", "no", "n", "0", "0.0"}


def _to_float(value: Any) -> float:
    if is_missing(value):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


class TabularEncoder(BaseEstimator, TransformerMixin):  # type: ignore[misc]
    """Encode the feature columns of a schema into a float64 matrix.

    Parameters
    ----------
    columns:
        The feature columns (``keizoku.data.schema.Column`` objects or their dicts).
    mode:
        ``"ordinal"`` (tree models: category codes, NaN kept for missing) or
        ``"onehot"`` (linear/distance models: one-hot, imputed and scaled numbers).
    max_categories:
        Keep at most this many most frequent levels per column; the rest share one code.
    text_features:
        Maximum TF-IDF vocabulary per text column (default ``TREE_TERMS`` = 200 for
        trees, 300 for one-hot; ``bench/text.py --parts trees`` measured the trees' cap).
    """

    def __init__(
        self,
        columns: list[Any] | None = None,
        mode: Mode = "ordinal",
        max_categories: int = 30,
        text_features: int | None = None,
    ) -> None:
        self.columns = columns
        self.mode = mode
        self.max_categories = max_categories
        self.text_features = text_features

    # ------------------------------------------------------------------ fit
    def fit(self, X: pd.DataFrame, y: Any = None) -> TabularEncoder:
        cols = [
            c if isinstance(c, Column) else Column.model_validate(c) for c in self.columns or []
        ]
        self.columns_ = cols
        self.plan_: list[tuple[str, str, dict[str, Any]]] = []
        names: list[str] = []
        for col in cols:
            series = X[col.name]
            step, state, out = self._fit_column(col, series)
            self.plan_.append((col.name, step, state))
            names.extend(out)
        self.feature_names_out_ = names
        self.n_features_out_ = len(names)
        return self

    def _fit_column(self, col: Column, s: pd.Series) -> tuple[str, dict[str, Any], list[str]]:
        if col.kind == "numeric":
            values = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
            missing = np.isnan(values)
            seen = not missing.all()
            median = float(np.nanmedian(values)) if seen else 0.0
            mean = float(np.nanmean(values)) if seen else 0.0
            std = float(np.nanstd(values)) if seen else 1.0
            has_na = bool(missing.any())
            stats = {"median": median, "mean": mean, "scale": std or 1.0, "indicator": has_na}
            out = [col.name] + (
                [f"{col.name}__missing"] if has_na and self.mode == "onehot" else []
            )
            return "numeric", stats, out
        if col.kind == "datetime":
            return "datetime", {}, [f"{col.name}__{p}" for p in DATE_PARTS]
        if col.kind == "text":
            width = self.text_features or (TREE_TERMS if self.mode == "ordinal" else 300)
            fitted, names = textcol.fit_text(col.name, s, width, embeddings=bool(col.embeddings))
            return "text", fitted, names
        # categorical / boolean
        counts = canonical_counts(s)  # the most frequent first
        levels = list(counts)[: self.max_categories]
        other = len(counts) > len(levels)
        numeric_codes = col.dtype == "int" and all(_is_int_text(k) for k in levels)
        if numeric_codes:
            levels = sorted(levels, key=lambda k: int(k))
        index = {k: i for i, k in enumerate(levels)}
        state: dict[str, Any] = {"index": index, "other": other, "numeric_codes": numeric_codes}
        if self.mode == "ordinal":
            return "category", state, [col.name]
        out = [f"{col.name}={k}" for k in levels] + ([f"{col.name}=<other>"] if other else [])
        out.append(f"{col.name}=<missing>")
        return "category", state, out

    # ------------------------------------------------------------ transform
    def transform(self, X: pd.DataFrame) -> np.ndarray:
        blocks = [self._transform_column(step, state, X[name]) for name, step, state in self.plan_]
        if not blocks:
            return np.zeros((len(X), 0))
        return np.hstack(blocks)

    def _transform_column(self, step: str, state: dict[str, Any], s: pd.Series) -> np.ndarray:
        n = len(s)
        if step == "numeric":
            v = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
            if self.mode == "ordinal":
                return np.asarray(v, dtype=float).reshape(n, 1)
            miss = np.isnan(v)
            v = (np.where(miss, state["median"], v) - state["mean"]) / state["scale"]
            if state["indicator"]:
                return np.column_stack([v, miss.astype(float)])
            return np.asarray(v, dtype=float).reshape(n, 1)
        if step == "datetime":
            d = pd.to_datetime(s, errors="coerce", format="mixed")
            parts = np.column_stack(
                [getattr(d.dt, p).to_numpy(dtype=float, na_value=np.nan) for p in DATE_PARTS]
            )
            return parts if self.mode == "ordinal" else np.nan_to_num(parts, nan=0.0)
        if step == "text":
            return textcol.transform_text(state, s)
        return self._expand(state, self._codes(state, s))

    def _codes(self, state: dict[str, Any], s: pd.Series) -> np.ndarray:
        """``_code`` of each value: NaN when missing, the level's index, else "other"."""
        codes, texts = canonical_codes(s)  # each distinct text looked up once
        index: dict[str, int] = state["index"]
        unseen = float(len(index)) if state["other"] else -1.0
        found = [float(index[t]) if t is not None and t in index else unseen for t in texts]
        table = np.array([*found, math.nan], dtype=float)  # code -1 (missing): the NaN at the end
        return np.take(table, codes)

    def _code(self, state: dict[str, Any], value: Any) -> float:
        if is_missing(value):
            return math.nan
        idx = state["index"].get(canonical(value))
        if idx is None:
            return float(len(state["index"])) if state["other"] else -1.0
        return float(idx)

    def _expand(self, state: dict[str, Any], codes: np.ndarray) -> np.ndarray:
        if self.mode == "ordinal":
            if state["numeric_codes"]:
                levels = np.array([int(k) for k in state["index"]] + [np.nan], dtype=float)
                idx = np.where(np.isnan(codes) | (codes < 0), -1, codes).astype(int)
                out = np.where(np.isnan(codes) | (codes < 0), np.nan, levels[idx])
                return out.reshape(-1, 1)
            return codes.reshape(-1, 1)
        width = len(state["index"]) + (1 if state["other"] else 0) + 1
        out = np.zeros((len(codes), width))
        missing = np.isnan(codes)
        known = ~missing & (codes >= 0)
        out[np.nonzero(known)[0], codes[known].astype(int)] = 1.0
        out[np.nonzero(missing)[0], width - 1] = 1.0
        return out

    # ----------------------------------------------------------- fast path
    def transform_records(self, records: list[dict[str, Any]]) -> np.ndarray:
        """Encode plain dicts (JSON records) without pandas; equals ``transform``."""
        rows = [self._encode_record(r) for r in records]
        return np.array(rows, dtype=float).reshape(len(records), self.n_features_out_)

    def _encode_record(self, record: dict[str, Any]) -> list[float]:
        row: list[float] = []
        for name, step, state in self.plan_:
            value = record.get(name)
            if step == "numeric":
                v = _to_float(value)
                if self.mode == "ordinal":
                    row.append(v)
                    continue
                miss = math.isnan(v)
                row.append(((state["median"] if miss else v) - state["mean"]) / state["scale"])
                if state["indicator"]:
                    row.append(1.0 if miss else 0.0)
            elif step == "category":
                code = self._code(state, value)
                row.extend(self._expand(state, np.array([code]))[0].tolist())
            elif step == "text":
                text = "" if is_missing(value) else str(value)
                row.extend(textcol.encode_one(state, text))
            else:
                row.extend(self._date_parts(value))
        return row

    def _date_parts(self, value: Any) -> list[float]:
        stamp = None if is_missing(value) else pd.to_datetime(value, errors="coerce")
        if stamp is None or stamp is pd.NaT:
            return [math.nan if self.mode == "ordinal" else 0.0] * len(DATE_PARTS)
        return [float(getattr(stamp, p)) for p in DATE_PARTS]

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        if "plan_" in state:
            state["plan_"] = [
                (n, step, {k: v for k, v in st.items() if not k.startswith("_")})
                for n, step, st in state["plan_"]
            ]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        # an embeddings view loads its model with the encoder, not at the first request
        textcol.load_models([st for _, step, st in state.get("plan_", []) if step == "text"])

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.array(self.feature_names_out_, dtype=object)


def _is_int_text(key: Any) -> bool:
    try:
        int(key)
    except (TypeError, ValueError):
        return False
    return True
