"""The tabular network: an embedding per category column, then blocks of
Linear → BatchNorm → ReLU → Dropout, then one linear output layer."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["MLPNet", "embedding_size"]


def embedding_size(n_codes: int) -> int:
    """fastai's rule of thumb for the width of a category's embedding, capped at 16."""
    return max(2, min(16, int(round(1.6 * float(n_codes) ** 0.56))))


class MLPNet(nn.Module):
    """``forward(numbers, codes)``: ``numbers`` (n × n_num, float), ``codes`` (n × n_cat,
    long, 0 = missing, 1 = unseen, 2.. = the encoder's levels)."""

    def __init__(
        self,
        n_num: int,
        cardinalities: list[int],
        width: int,
        depth: int,
        dropout: float,
        n_out: int,
    ) -> None:
        super().__init__()
        self.embeddings = nn.ModuleList(nn.Embedding(n, embedding_size(n)) for n in cardinalities)
        size = n_num + sum(embedding_size(n) for n in cardinalities)
        layers: list[nn.Module] = []
        for _ in range(depth):
            layers += [
                nn.Linear(size, width),
                nn.BatchNorm1d(width),
                nn.ReLU(),
                nn.Dropout(dropout),
            ]
            size = width
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(size, n_out)

    def penultimate(self, numbers: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        parts = [numbers] + [emb(codes[:, j]) for j, emb in enumerate(self.embeddings)]
        return self.body(torch.cat(parts, dim=1))  # type: ignore[no-any-return]

    def forward(self, numbers: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        return self.head(self.penultimate(numbers, codes))  # type: ignore[no-any-return]
