"""Rotary expression embedding (REE): an expression value as sines and cosines.

``REE(x)_i = [sin(x / θ_i), cos(x / θ_i)]`` with θ a geometric ladder from ``theta_min`` to
``theta_max`` (log1p units). Computed in the forward pass from the batch's values, so nothing of
size samples x genes x d is ever stored. The mask value (-10) lands far from any measured value
(log1p >= 0), so a masked gene and a measured zero get different embeddings.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class RotaryExpressionEmbedding(nn.Module):
    def __init__(self, dim: int, theta_min: float = 0.1, theta_max: float = 100.0) -> None:
        super().__init__()
        if dim % 2:
            raise ValueError(f"REE dimension must be even, got {dim}")
        half = dim // 2
        ladder = torch.logspace(math.log10(theta_min), math.log10(theta_max), half)  # [d/2]
        self.register_buffer("inv_theta", 1.0 / ladder, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x [B, G] -> angles [B, G, d/2] -> [B, G, d]; float32 so large x keep their phase.
        angles = x.float().unsqueeze(-1) * self.inv_theta
        return torch.cat([angles.sin(), angles.cos()], dim=-1)
