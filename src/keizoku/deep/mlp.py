"""``TabularMLP``: a multilayer perceptron for one table, as a scikit-learn estimator.

It reads the ``TabularEncoder``'s ordinal matrix. The columns named in
``categories`` (set from the fitted encoder by ``bind_encoder``) go through an
embedding each: code 0 is a missing value, 1 a value the encoder did not list, 2.. the
encoder's levels. Every other column is a number: median-imputed (with a missing
indicator when the training rows had gaps), standardised and clipped to ±5. The network
trains with AdamW on mini-batches; given ``eval_set`` (the fold's validation rows) it
stops when the validation loss has not improved for ``patience`` epochs and keeps the
best epoch's weights. A fit with ``seed`` set gives the same weights on the CPU every
time (``_runtime.session``). Pickled, it holds NumPy arrays only (the weights as a
state dict), so a model trained on a GPU loads and serves on a CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from keizoku.deep._runtime import (
    EarlyStopping,
    NumpyPickle,
    device_for,
    known_classes,
    predict_threads,
    session,
    softmax,
)

__all__ = ["EpochCallback", "TabularMLP", "bind_encoder", "category_columns"]

# ``on_epoch(epoch, train_loss, val_loss)``: True stops the training after this epoch.
EpochCallback = Callable[[int, float, float | None], bool]

CLIP = 5.0  # standardised numbers beyond ±CLIP are clipped: one outlier should not dominate
PREDICT_CHUNK = 8192


def category_columns(encoder: Any) -> dict[int, list[float]]:
    """The category columns of a fitted ordinal ``TabularEncoder``'s matrix: column index →
    the values the encoder writes for its levels, in level order (anything else is unseen)."""
    from keizoku.features.encoder import DATE_PARTS

    if encoder.mode != "ordinal":
        raise ValueError(f"TabularMLP reads an ordinal encoder's matrix, not {encoder.mode!r}.")
    out: dict[int, list[float]] = {}
    j = 0
    for _name, step, state in encoder.plan_:
        if step == "category":
            n = len(state["index"])
            if state["numeric_codes"]:  # the encoder writes the integer value itself
                out[j] = [float(int(k)) for k in state["index"]]
            else:
                out[j] = [float(i) for i in range(n + (1 if state["other"] else 0))]
            j += 1
        elif step == "text":
            j += len(state["vectorizer"].vocabulary_)
        elif step == "datetime":
            j += len(DATE_PARTS)
        else:
            j += 1
    return out


def bind_encoder(estimator: TabularMLP, encoder: Any) -> TabularMLP:
    """Tell a fresh network which of the fitted encoder's columns are categories."""
    return estimator.set_params(categories=category_columns(encoder))  # type: ignore[no-any-return]


class TabularMLP(NumpyPickle, BaseEstimator):  # type: ignore[misc]
    """A tabular MLP: ``task`` is ``"binary"``, ``"multiclass"`` or ``"regression"``.

    Classifiers take class codes (``classes_`` after fit) and give ``predict_proba``;
    the regressor standardises its target while it trains. ``device="auto"`` trains on the
    GPU when torch sees one; the fitted network always predicts on the CPU.
    """

    def __init__(
        self,
        task: str = "binary",
        width: int = 128,
        depth: int = 2,
        dropout: float = 0.1,
        lr: float = 2e-3,
        weight_decay: float = 1e-4,
        batch_size: int | None = None,
        max_epochs: int = 100,
        patience: int = 10,
        categories: dict[int, list[float]] | None = None,
        seed: int | None = 0,
        n_jobs: int | None = None,
        device: str = "auto",
    ) -> None:
        self.task = task
        self.width = width
        self.depth = depth
        self.dropout = dropout
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.categories = categories
        self.seed = seed
        self.n_jobs = n_jobs
        self.device = device

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        eval_set: tuple[np.ndarray, np.ndarray] | None = None,
        on_epoch: EpochCallback | None = None,
    ) -> TabularMLP:
        X = np.asarray(X, dtype=float)
        cats = dict(self.categories or {})
        self.cat_columns_ = sorted(c for c in cats if c < X.shape[1])
        self.cat_values_ = [np.asarray(cats[c], dtype=float) for c in self.cat_columns_]
        self.num_columns_ = [j for j in range(X.shape[1]) if j not in set(self.cat_columns_)]
        self._fit_numbers(X[:, self.num_columns_])
        if self.task == "regression":
            yv = np.asarray(y, dtype=float)
            self.y_mean_, self.y_scale_ = float(yv.mean()), float(yv.std()) or 1.0
            n_out = 1
        else:
            self.classes_ = np.unique(np.asarray(y))
            n_out = len(self.classes_)
            eval_set = known_classes(eval_set, self.classes_)
        with session(self.seed, self.n_jobs):
            self._train(X, y, eval_set, on_epoch, n_out)
        return self

    def _fit_numbers(self, num: np.ndarray) -> None:
        missing = np.isnan(num)
        self.indicators_ = np.flatnonzero(missing.any(axis=0))
        with np.errstate(all="ignore"):
            median = np.nanmedian(np.where(missing.all(axis=0), 0.0, num), axis=0)
        filled = np.where(missing, median, num)
        self.median_ = np.nan_to_num(median)
        self.mean_ = filled.mean(axis=0) if len(filled) else np.zeros(num.shape[1])
        scale = filled.std(axis=0) if len(filled) else np.ones(num.shape[1])
        self.scale_ = np.where(scale > 0, scale, 1.0)

    def _inputs(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The network's two inputs: standardised numbers (+ indicators) and category codes."""
        X = np.asarray(X, dtype=float)
        num = X[:, self.num_columns_]
        missing = np.isnan(num)
        num = (np.where(missing, self.median_, num) - self.mean_) / self.scale_
        num = np.clip(num, -CLIP, CLIP)
        if len(self.indicators_):
            num = np.hstack([num, missing[:, self.indicators_].astype(float)])
        codes = np.zeros((len(X), len(self.cat_columns_)), dtype=np.int64)
        for k, (col, values) in enumerate(zip(self.cat_columns_, self.cat_values_, strict=True)):
            v = X[:, col]
            if not len(values):
                codes[:, k] = np.where(np.isnan(v), 0, 1)
                continue
            order = np.argsort(values)
            pos = np.searchsorted(values[order], v).clip(0, len(values) - 1)
            hit = values[order][pos] == v
            codes[:, k] = np.where(np.isnan(v), 0, np.where(hit, order[pos] + 2, 1))
        return num.astype(np.float32), codes

    def _targets(self, y: np.ndarray) -> np.ndarray:
        if self.task == "regression":
            return ((np.asarray(y, dtype=float) - self.y_mean_) / self.y_scale_).astype(np.float32)
        return np.searchsorted(self.classes_, np.asarray(y)).astype(np.int64)

    def _train(
        self,
        X: np.ndarray,
        y: np.ndarray,
        eval_set: tuple[np.ndarray, np.ndarray] | None,
        on_epoch: EpochCallback | None,
        n_out: int,
    ) -> None:
        import torch

        from keizoku.deep._net import MLPNet

        device = device_for(self.device)
        num, codes = self._inputs(X)
        self.arch_ = {
            "n_num": num.shape[1],
            "cardinalities": [len(v) + 2 for v in self.cat_values_],
            "width": int(self.width),
            "depth": int(self.depth),
            "dropout": float(self.dropout),
            "n_out": n_out,
        }
        net = MLPNet(**self.arch_).to(device)
        tensors = [torch.from_numpy(a).to(device) for a in (num, codes, self._targets(y))]
        valid = None
        if eval_set is not None:
            vnum, vcodes = self._inputs(eval_set[0])
            valid = [
                torch.from_numpy(a).to(device) for a in (vnum, vcodes, self._targets(eval_set[1]))
            ]
        loss_fn: Any = (
            torch.nn.MSELoss() if self.task == "regression" else torch.nn.CrossEntropyLoss()
        )
        opt = torch.optim.AdamW(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        n = len(num)
        batch = self.batch_size or max(32, min(1024, n // 32))
        shuffle = torch.Generator().manual_seed(self.seed or 0)
        stopper = EarlyStopping(self.patience, on_epoch)
        for epoch in range(1, self.max_epochs + 1):
            net.train()
            perm = torch.randperm(n, generator=shuffle).to(device)
            total = 0.0
            for start in range(0, n, batch):
                idx = perm[start : start + batch]
                if len(idx) < 2 and n > 1:  # batch norm needs two rows
                    continue
                opt.zero_grad()
                out = net(tensors[0][idx], tensors[1][idx])
                loss = loss_fn(out.squeeze(1) if n_out == 1 else out, tensors[2][idx])
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
            val_loss = None if valid is None else self._loss(net, valid, loss_fn, n_out)
            if stopper.step(net, epoch, total / max(n, 1), val_loss):
                break
        self.history_, self.best_epoch_ = stopper.history, stopper.best_epoch
        self.net_ = stopper.restore_best(net)

    @staticmethod
    def _loss(net: Any, data: list[Any], loss_fn: Any, n_out: int) -> float:
        import torch

        net.eval()
        with torch.inference_mode():
            out = net(data[0], data[1])
            return float(loss_fn(out.squeeze(1) if n_out == 1 else out, data[2]))

    # -------------------------------------------------------------- predict
    def _forward(self, X: np.ndarray, penultimate: bool = False) -> np.ndarray:
        import torch

        num, codes = self._inputs(X)
        parts = []
        with predict_threads(len(num), self.n_jobs), torch.inference_mode():
            for s in range(0, max(len(num), 1), PREDICT_CHUNK):
                a = torch.from_numpy(num[s : s + PREDICT_CHUNK])
                b = torch.from_numpy(codes[s : s + PREDICT_CHUNK])
                out = self.net_.penultimate(a, b) if penultimate else self.net_(a, b)
                parts.append(out.numpy().astype(float))
        return np.vstack(parts)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(softmax(self._forward(X)))

    def predict(self, X: np.ndarray) -> np.ndarray:
        if self.task == "regression":
            return np.asarray(self._forward(X)[:, 0] * self.y_scale_ + self.y_mean_)
        return np.asarray(self.classes_[self.predict_proba(X).argmax(axis=1)])

    def embed(self, X: np.ndarray) -> np.ndarray:
        """The penultimate layer's activations (n × width): what the last layer reads."""
        return self._forward(X, penultimate=True)

    def _empty_net(self) -> Any:
        from keizoku.deep._net import MLPNet

        return MLPNet(**self.arch_)
