"""scikit-learn estimators over keizoku's search: ``KeizokuClassifier``, ``KeizokuRegressor``.

They follow scikit-learn's protocol (``__init__`` stores, ``fit`` validates and returns
``self``, learned state ends in ``_``), so ``clone``, ``Pipeline``, ``GridSearchCV`` and
``cross_val_score`` work. ``fit`` is :func:`keizoku.api.fit_frame`, the CLI's search.

``X`` is a DataFrame (columns keep their names; text, boolean, datetime and categorical
columns are encoded by keizoku; numbers are numeric features) or anything array-like of
numbers (columns ``x0..``).
Missing values (NaN) in ``X`` are allowed; infinities are not. Errors of input are
``InputError``: a keizoku ``UserInputError`` and a ``ValueError``, as scikit-learn expects.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils import assert_all_finite
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from keizoku.api import fit_frame
from keizoku.data.labels import LabelCodec
from keizoku.data.schema import Column, Schema, Task, infer_schema
from keizoku.errors import UserInputError
from keizoku.registry.servable import ServableModel
from keizoku.training.config import TrainSpec, merge_train

__all__ = ["InputError", "KeizokuClassifier", "KeizokuRegressor"]


class InputError(UserInputError, ValueError):
    """Bad ``X`` or ``y``: keizoku's error (exit 2 / HTTP 400) and scikit-learn's ValueError."""


class _KeizokuEstimator(BaseEstimator):  # type: ignore[misc]
    """What both estimators share: the parameters (the spec's ``train:`` keys) and ``X``."""

    _task_kind = ""  # "classification" | "regression"

    def __init__(
        self,
        budget: float | str = 60.0,
        max_trials: int | None = None,
        families: Sequence[str] | None = None,
        preset: str = "good",
        metric: str | None = None,
        folds: int | None = None,
        search: str = "bayes",
        ensemble: bool = True,
        random_state: int | None = None,
    ) -> None:
        self.budget = budget
        self.max_trials = max_trials
        self.families = families
        self.preset = preset
        self.metric = metric
        self.folds = folds
        self.search = search
        self.ensemble = ensemble
        self.random_state = random_state

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # the encoder imputes (with missing indicators)
        # Without max_trials the search stops on the clock: two fits may differ.
        tags.non_deterministic = self.max_trials is None
        return tags

    def _spec(self) -> TrainSpec:
        seed = self.random_state
        if isinstance(seed, np.random.RandomState):
            seed = int(seed.randint(0, 2**31 - 1))
        given = {
            "budget": self.budget,
            "max_trials": self.max_trials,
            "models": list(self.families) if self.families is not None else None,
            "preset": self.preset,
            "metric": self.metric,
            "folds": self.folds,
            "search": self.search,
            "ensemble": self.ensemble,
            "seed": 0 if seed is None else int(seed),
        }
        try:
            return merge_train(TrainSpec(), given, section="estimator parameters")
        except UserInputError as exc:
            raise InputError(exc.message) from exc

    def _frame(self, X: Any, y: Any = None, *, fit: bool) -> tuple[pd.DataFrame, Any]:
        """``X`` as the frame keizoku trains on or scores (and ``y`` checked, when fitting)."""
        if fit and y is None:
            raise InputError(
                f"{type(self).__name__} requires y to be passed, but the target y is None."
            )
        if isinstance(X, pd.DataFrame) and (fit or getattr(self, "frame_input_", False)):
            validate_data(self, X, reset=fit, skip_check_array=True)
            if len(X) < 2 and fit:
                raise InputError(f"X has {len(X)} sample(s): fit needs at least 2 samples.")
            frame = X.rename(columns=str).reset_index(drop=True)
            if fit:
                y = column_or_1d(y, warn=True)
                if len(y) != len(frame):
                    raise InputError(f"X has {len(frame)} rows but y has {len(y)} values.")
                if y.dtype.kind in "fc":
                    assert_all_finite(y, input_name="y")
                elif pd.isna(y).any():
                    raise InputError("Input y contains NaN: every row needs a label.")
            return frame, y
        if not fit and getattr(self, "frame_input_", False):
            # Fitted on a DataFrame, scored on an array (scikit-learn warns): the fitted columns.
            X = validate_data(self, X, reset=False, dtype=None, ensure_all_finite="allow-nan")
            names = [str(c) for c in self.feature_names_in_]
            return pd.DataFrame(X, columns=names).infer_objects(), None
        if fit:
            X, y = validate_data(
                self, X, y, ensure_all_finite="allow-nan", ensure_min_samples=2,
                y_numeric=self._task_kind == "regression",
            )  # fmt: skip
        else:
            X = validate_data(self, X, reset=False, ensure_all_finite="allow-nan")
        names = [f"x{i}" for i in range(X.shape[1])]
        return pd.DataFrame(np.asarray(X, dtype=float), columns=names), y

    def _task(self, y: np.ndarray) -> Task:
        raise NotImplementedError

    def _fit(self, X: Any, y: Any) -> None:
        cfg = self._spec()
        frame, y = self._frame(X, y, fit=True)
        task = self._task(y)
        self.frame_input_ = isinstance(X, pd.DataFrame)
        target = "target"
        while target in frame.columns:
            target += "_"
        frame = frame.assign(**{target: y})
        schema = _schema(frame, target, task)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                found = fit_frame(frame, target, cfg, schema=schema, task=task)
        except UserInputError as exc:
            if isinstance(exc, ValueError):
                raise
            raise InputError(exc.message) from exc
        # The model and its leaderboard, not the training context (it holds the data).
        self.model_: ServableModel = found.model
        self.leaderboard_: pd.DataFrame = found.board

    def _raw(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "model_")
        frame, _ = self._frame(X, fit=False)
        return np.asarray(self.model_.predict_raw(frame))


def _schema(frame: pd.DataFrame, target: str, task: Task) -> Schema:
    """keizoku's inferred schema, except that a column of numbers is a numeric feature.

    scikit-learn users say what a number means (OneHotEncoder, ColumnTransformer): no
    integer-coded category, id or constant guessing on numbers, so an array and the same
    numbers in a DataFrame train the same model. Text, boolean, datetime and categorical
    columns of a DataFrame are inferred as ``keizoku train`` infers them.
    """
    inferred = infer_schema(frame, target, task=task)
    columns = [
        Column(name=c.name, kind="numeric")
        if c.role != "target" and _is_number(frame[c.name])
        else c
        for c in inferred.columns
    ]
    return inferred.model_copy(update={"columns": columns})


def _scalar(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _is_number(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


class KeizokuClassifier(ClassifierMixin, _KeizokuEstimator):  # type: ignore[misc]
    """keizoku's search as a scikit-learn classifier (binary or multiclass)."""

    _task_kind = "classification"

    def fit(self, X: Any, y: Any) -> KeizokuClassifier:
        """Search, ensemble and refit on ``X``, ``y``; returns ``self``."""
        self._fit(X, y)
        codec = LabelCodec(self.model_.classes)
        self.columns_ = codec.encode(list(self.classes_))  # model column of each classes_ entry
        return self

    def _task(self, y: np.ndarray) -> Task:
        check_classification_targets(y)
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise InputError(
                f"y has only one class ({_scalar(self.classes_[0])!r}): a classifier needs at "
                "least two classes."
            )
        return "binary" if len(self.classes_) == 2 else "multiclass"

    def predict_proba(self, X: Any) -> np.ndarray:
        """Probabilities, one column per entry of ``classes_``."""
        return self._raw(X)[:, self.columns_]

    def predict(self, X: Any) -> np.ndarray:
        proba = self.predict_proba(X)
        return np.asarray(self.classes_[proba.argmax(axis=1)])


class KeizokuRegressor(RegressorMixin, _KeizokuEstimator):  # type: ignore[misc]
    """keizoku's search as a scikit-learn regressor."""

    _task_kind = "regression"

    def fit(self, X: Any, y: Any) -> KeizokuRegressor:
        """Search, ensemble and refit on ``X``, ``y``; returns ``self``."""
        self._fit(X, y)
        return self

    def _task(self, y: np.ndarray) -> Task:
        return "regression"

    def predict(self, X: Any) -> np.ndarray:
        return self._raw(X)
