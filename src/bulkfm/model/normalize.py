"""Per-gene standardisation inside the model, from train-split statistics.

Inputs and outputs stay log1p(TPM); inside, a gene is measured in its own train standard
deviations around its train mean, so a network that outputs 0 predicts the gene mean and
learns only what the sample adds. Masked entries are recognised by the exact mask value
(measured log1p values are >= 0) and become 0 (the mean) for the MLPs.
"""

from __future__ import annotations

import torch
from torch import nn

STD_FLOOR = 0.1  # log1p units: near-constant genes must not blow up their z-scores


class GeneScaler(nn.Module):
    def __init__(self, n_genes: int, mean: torch.Tensor | None = None,
                 std: torch.Tensor | None = None, mask_value: float = -10.0) -> None:
        super().__init__()
        self.mask_value = mask_value
        self.register_buffer("mean", torch.zeros(n_genes) if mean is None else mean.float().clone())
        s = torch.ones(n_genes) if std is None else std.float().clamp_min(STD_FLOOR).clone()
        self.register_buffer("std", s)

    def masked(self, x: torch.Tensor) -> torch.Tensor:
        return x == self.mask_value  # [B, G] bool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, G] log1p (masked = mask value) -> z [B, G], masked -> 0."""
        z = (x.float() - self.mean) / self.std
        return z.masked_fill(self.masked(x), 0.0)

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        return self.mean + self.std * z.float()  # [B, G] back to log1p
