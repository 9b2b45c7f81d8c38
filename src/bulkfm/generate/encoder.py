"""Encoder q(z | x): standardized expression -> a Gaussian posterior for each latent part.

It sees the expression only, never the metadata: whatever a part holds about the condition
it must read from the profile, which is what lets a counterfactual keep a sample's own
technical latent while the biological one is moved.
"""

from __future__ import annotations

import torch
from torch import nn


class Encoder(nn.Module):
    def __init__(self, n_genes: int, hidden: list[int], latents: dict[str, int],
                 dropout: float = 0.1) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        d = n_genes
        for h in hidden:
            layers += [nn.Linear(d, h), nn.LayerNorm(h), nn.GELU(), nn.Dropout(dropout)]
            d = h
        self.trunk = nn.Sequential(*layers)
        self.heads = nn.ModuleDict({g: nn.Linear(d, 2 * k) for g, k in latents.items()})

    def forward(self, z_expr: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """z_expr [B, G] -> {group: (mu [B, k_g], logvar [B, k_g])}"""
        h = self.trunk(z_expr)  # [B, hidden[-1]]
        out = {}
        for g, head in self.heads.items():
            mu, logvar = head(h).chunk(2, dim=-1)
            out[g] = (mu, logvar.clamp(-8.0, 4.0))
        return out
