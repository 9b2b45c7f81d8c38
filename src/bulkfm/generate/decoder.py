"""Decoder p(x | z): a sum of one network per latent part, plus per-gene residual noise.

x_std = D_bio(z_bio) + D_pert(z_pert) + D_tech(z_tech) + b  (genes in train standard deviations)

The sum keeps the parts apart by construction: a technical latent can only add its own term
to every profile, the assumption batch correction makes, so changing the study moves no
biological term. Interactions inside a group (disease x sample type) live in that group's
network and prior. The residual is Gaussian per gene with a learned scale (what the latents
do not explain), sampled only when profiles are generated.
"""

from __future__ import annotations

import torch
from torch import nn


class Decoder(nn.Module):
    def __init__(self, n_genes: int, latents: dict[str, int], hidden: int,
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.parts = nn.ModuleDict({
            g: nn.Sequential(nn.Linear(k, hidden), nn.GELU(), nn.Dropout(dropout),
                             nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, n_genes))
            for g, k in latents.items()})
        self.bias = nn.Parameter(torch.zeros(n_genes))
        self.log_sigma = nn.Parameter(torch.full((n_genes,), -0.5))  # residual sd, std units

    def forward(self, z: dict[str, torch.Tensor]) -> torch.Tensor:
        """{group: [B, k_g]} -> mean [B, G] (standardized expression)"""
        out = self.bias
        for g, net in self.parts.items():
            out = out + net(z[g])
        return out

    def sigma(self) -> torch.Tensor:
        return self.log_sigma.clamp(-4.0, 1.0).exp()  # [G]
