"""The ``clustering.scaling`` applied after the encoder (numbers z-scored, categories one-hot).

* ``standard``: the z-scores as they are;
* ``robust`` / ``minmax``: scikit-learn's ``RobustScaler`` / ``MinMaxScaler`` on every column;
* ``log``: each **skewed** number (absolute skewness above ``SKEWED`` in the training rows)
  becomes ``sign(x) * log1p(|x|)`` of its original value, then z-scored again, so a few
  very large values (spending, counts) no longer decide the distances alone;
* ``quantile``: each number is mapped through its training quantiles onto a standard
  normal (scikit-learn's ``QuantileTransformer``), whatever its shape.

``log`` and ``quantile`` touch the number columns only (one-hot columns keep their 0/1):
the encoder's fitted mean and scale give back each number's original value. The fitted
object is the ``scaler`` of a ``ClusterMember`` (``transform`` on the encoded matrix), so
serving and the gates apply it as they apply any scaler.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from keizoku.features.encoder import TabularEncoder

__all__ = ["SKEWED", "NumberScaler", "make_scaler"]

SKEWED = 1.0  # |skewness| above which ``log`` transforms a number


class NumberScaler:
    """``log`` or ``quantile`` on the number columns of an encoded matrix (see the module)."""

    def __init__(self, kind: str, encoder: TabularEncoder) -> None:
        self.kind = kind
        self.encoder = encoder

    def fit(self, X: np.ndarray) -> NumberScaler:
        from sklearn.preprocessing import QuantileTransformer

        names = list(self.encoder.feature_names_out_)
        numbers = [(names.index(name), state) for name, step, state in self.encoder.plan_
                   if step == "numeric"]  # fmt: skip
        self.columns_: list[int] = []
        self.affine_: list[tuple[float, float]] = []  # z-score of the original → raw
        self.after_: list[tuple[float, float]] = []  # mean, std of the transformed values
        for j, state in numbers:
            raw = X[:, j] * state["scale"] + state["mean"]
            if self.kind == "log" and abs(_skewness(raw)) <= SKEWED:
                continue
            self.columns_.append(j)
            self.affine_.append((state["mean"], state["scale"]))
            out = _signed_log(raw)
            self.after_.append((float(out.mean()), float(out.std()) or 1.0))
        self.quantiles_: Any = None
        if self.kind == "quantile" and self.columns_:
            rows = min(1000, len(X))
            self.quantiles_ = QuantileTransformer(
                n_quantiles=rows, output_distribution="normal", subsample=100_000, random_state=0
            ).fit(X[:, self.columns_])
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        out = np.array(X, dtype=float, copy=True)
        if not self.columns_:
            return out
        if self.quantiles_ is not None:
            out[:, self.columns_] = self.quantiles_.transform(out[:, self.columns_])
            return out
        for j, (mean, scale), (m, s) in zip(self.columns_, self.affine_, self.after_, strict=True):
            out[:, j] = (_signed_log(out[:, j] * scale + mean) - m) / s
        return out

    def fit_transform(self, X: np.ndarray) -> np.ndarray:
        return self.fit(X).transform(X)


def _signed_log(x: np.ndarray) -> np.ndarray:
    return np.asarray(np.sign(x) * np.log1p(np.abs(x)), dtype=float)


def _skewness(x: np.ndarray) -> float:
    std = float(np.std(x))
    return float(np.mean(((x - np.mean(x)) / std) ** 3)) if std > 0 else 0.0


def make_scaler(kind: str, encoder: TabularEncoder) -> Any:
    """The unfitted scaler of ``clustering.scaling`` (None for ``standard``)."""
    from sklearn.preprocessing import MinMaxScaler, RobustScaler

    if kind == "robust":
        return RobustScaler()
    if kind == "minmax":
        return MinMaxScaler()
    if kind in ("log", "quantile"):
        return NumberScaler(kind, encoder)
    return None  # standard: the encoder's z-scores as they are
