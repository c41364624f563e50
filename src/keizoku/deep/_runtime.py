"""Where and how a network runs: the device, the seed, the thread count.

Every fit and every prediction enters ``session``: it forks torch's global random
state (a fit never changes the caller's), seeds it, asks for deterministic
algorithms and sets the number of threads, then puts all of it back. Torch keeps
these settings process-wide, so leaving them changed would leak into the server and
the other families.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = [
    "EarlyStopping",
    "NumpyPickle",
    "device_for",
    "known_classes",
    "predict_threads",
    "session",
    "softmax",
]

SMALL_BATCH = 1000  # rows below which a prediction runs on one thread


def device_for(choice: str) -> Any:
    """``"auto"``: the GPU when torch sees one, else the CPU; or a torch device name."""
    import torch

    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(choice)


def softmax(logits: Any) -> Any:
    """Class probabilities from a network's output (a NumPy array, one row per input)."""
    import numpy as np

    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(axis=1, keepdims=True)


def known_classes(eval_set: Any, classes: Any) -> Any:
    """``eval_set`` without the rows of a class the training rows lacked (a rare class can
    miss a fold's training part); None when no row is left."""
    import numpy as np

    if eval_set is None:
        return None
    X, y = eval_set
    keep = np.isin(np.asarray(y), classes)
    return (np.asarray(X)[keep], np.asarray(y)[keep]) if keep.any() else None


@contextmanager
def predict_threads(n_rows: int, n_jobs: int | None) -> Iterator[None]:
    """One thread below ``SMALL_BATCH`` rows, else ``n_jobs`` (None: torch's default).

    On a busy 2-core machine a second thread made one 8x8 image cost 110 ms (median)
    instead of 0.64 ms; switching the count costs ~0.1 ms, so a request always switches.
    """
    import torch

    old = torch.get_num_threads()
    want = 1 if n_rows < SMALL_BATCH else n_jobs
    if want and want != old:
        torch.set_num_threads(want)
    try:
        yield
    finally:
        if torch.get_num_threads() != old:
            torch.set_num_threads(old)


@contextmanager
def session(seed: int | None, threads: int | None) -> Iterator[None]:
    """Seeded, deterministic, ``threads``-threaded torch for the duration of the block."""
    import torch

    old_threads = torch.get_num_threads()
    old_deterministic = torch.are_deterministic_algorithms_enabled()
    old_warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    with torch.random.fork_rng(devices=[]):
        try:
            if threads:
                torch.set_num_threads(threads)
            if seed is not None:
                torch.manual_seed(seed)
                # On a GPU some kernels have no deterministic version: warn, do not fail.
                torch.use_deterministic_algorithms(True, warn_only=torch.cuda.is_available())
            yield
        finally:
            torch.set_num_threads(old_threads)
            torch.use_deterministic_algorithms(old_deterministic, warn_only=old_warn_only)


class EarlyStopping:
    """The epoch loop's bookkeeping: the history, the best validation epoch and its weights.

    ``step`` records an epoch and says whether to stop: ``patience`` epochs without a lower
    validation loss, or ``on_epoch`` asking to. Without validation rows every epoch counts
    as the best (the last one is kept).
    """

    def __init__(self, patience: int, on_epoch: Any = None) -> None:
        self.patience = patience
        self.on_epoch = on_epoch
        self.history: list[tuple[int, float, float | None]] = []
        self.best_epoch = 0
        self.best_state: dict[str, Any] | None = None
        self._best = float("inf")
        self._stale = 0

    def step(self, net: Any, epoch: int, train_loss: float, val_loss: float | None) -> bool:
        self.history.append((epoch, train_loss, val_loss))
        if val_loss is None:
            self.best_epoch = epoch
        elif val_loss < self._best - 1e-6:
            self._best, self._stale, self.best_epoch = val_loss, 0, epoch
            self.best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        else:
            self._stale += 1
        if self.on_epoch is not None and self.on_epoch(epoch, train_loss, val_loss):
            return True
        return self._stale >= self.patience

    def restore_best(self, net: Any) -> Any:
        """``net`` with the best epoch's weights, on the CPU, in evaluation mode."""
        if self.best_state is not None:
            net.load_state_dict(self.best_state)
        return net.cpu().eval()


class NumpyPickle:
    """Pickle a fitted network's weights as NumPy arrays (no torch object in the file) and
    rebuild it on the CPU when unpickled; the class says how to build an empty network."""

    def _empty_net(self) -> Any:
        raise NotImplementedError

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        net = state.pop("net_", None)
        if net is not None:
            state["net_weights_"] = {k: v.cpu().numpy() for k, v in net.state_dict().items()}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        import numpy as np
        import torch

        weights = state.pop("net_weights_", None)
        self.__dict__.update(state)
        if weights is not None:
            net = self._empty_net()
            net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in weights.items()})
            self.net_ = net.eval()
