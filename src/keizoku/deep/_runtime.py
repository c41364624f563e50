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

__all__ = ["device_for", "session"]


def device_for(choice: str) -> Any:
    """``"auto"``: the GPU when torch sees one, else the CPU; or a torch device name."""
    import torch

    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(choice)


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
