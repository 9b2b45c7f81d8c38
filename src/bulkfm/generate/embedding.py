"""Per-group condition embedding and the conditional prior p(z_g | c_g) of that group's latent.

A group's embedding is the sum of one learned vector per field value ("unknown" is value 0 of
every categorical field) and a linear map of each numeric field (value, known flag). The prior
mean is a linear map of that sum plus a small MLP residual: the linear part makes an unseen
combination of seen values start from the sum of their effects (the additive baseline, in
latent space), the MLP learns the interactions that training data show.
"""

from __future__ import annotations

import torch
from torch import nn


class FieldEmbedding(nn.Module):
    def __init__(self, categorical: dict[str, int], numeric: list[str], dim: int) -> None:
        super().__init__()
        self.cat = nn.ModuleDict({f: nn.Embedding(n, dim) for f, n in categorical.items()})
        self.num = nn.ModuleDict({f: nn.Linear(2, dim) for f in numeric})
        self.bias = nn.Parameter(torch.zeros(dim))
        for e in self.cat.values():
            nn.init.normal_(e.weight, std=0.5)

    def forward(self, codes: dict[str, torch.Tensor], batch: int) -> torch.Tensor:
        """codes: {field: int64 [B] | float [B, 2]} -> [B, dim]"""
        out = self.bias.expand(batch, -1)
        for f, emb in self.cat.items():
            out = out + emb(codes[f])
        for f, lin in self.num.items():
            out = out + lin(codes[f])
        return out


class ConditionalPrior(nn.Module):
    """[B, dim] condition embedding -> (mu [B, k], logvar [B, k])."""

    def __init__(self, dim: int, latent: int, hidden: int = 64) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, 2 * latent)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, 2 * latent))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = (self.linear(e) + self.mlp(e)).chunk(2, dim=-1)
        return mu, logvar.clamp(-8.0, 4.0)
