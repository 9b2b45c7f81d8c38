"""Performer layer: FAVOR+ linear attention (Choromanski et al. 2021), after lucidrains.

softmax(QKᵀ)V is approximated with positive random features φ, so attention over G genes costs
O(G · m · d) time and O(G · m) memory (m random features), never a G x G matrix. The
orthogonal projection is drawn once from the config seed and saved with the weights, so a run
is reproducible and resumable (no feature redraw during training).
"""

from __future__ import annotations

import torch
from torch import nn


def orthogonal_gaussian(n_rows: int, n_cols: int, generator: torch.Generator) -> torch.Tensor:
    """[n_rows, n_cols] blocks of orthogonal rows with chi-distributed norms (FAVOR+)."""
    blocks = []
    for _ in range((n_rows + n_cols - 1) // n_cols):
        q, _ = torch.linalg.qr(torch.randn(n_cols, n_cols, generator=generator))
        blocks.append(q.T)
    mat = torch.cat(blocks)[:n_rows]
    norms = torch.randn(n_rows, n_cols, generator=generator).norm(dim=1)
    return norms.unsqueeze(1) * mat


def softmax_features(x: torch.Tensor, proj: torch.Tensor, is_query: bool,
                     eps: float = 1e-4) -> torch.Tensor:
    # x [B, H, G, dh], proj [m, dh] -> φ(x) [B, H, G, m] (float32 for the exp)
    x = x.float() * x.shape[-1] ** -0.25
    dash = x @ proj.T  # [B, H, G, m]
    diag = (x**2).sum(-1, keepdim=True) / 2
    # Subtract a max for stability: per token for queries (cancels in the normaliser), one
    # shared value for keys (must be the same for every key).
    stab = dash.amax(-1, keepdim=True) if is_query else dash.amax((-1, -2), keepdim=True)
    return proj.shape[0] ** -0.5 * (torch.exp(dash - diag - stab.detach()) + eps)


def linear_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    # q, k [B, H, G, m] features; v [B, H, G, dh] -> [B, H, G, dh]
    kv = torch.einsum("bhgm,bhgd->bhmd", k, v.float())  # [B, H, m, dh]
    norm = torch.einsum("bhgm,bhm->bhg", q, k.sum(2)).clamp_min(1e-6)  # [B, H, G]
    return torch.einsum("bhgm,bhmd->bhgd", q, kv) / norm.unsqueeze(-1)


class FavorAttention(nn.Module):
    def __init__(self, d_model: int, n_heads: int, nb_features: int, seed: int) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} is not divisible by n_heads {n_heads}")
        self.h, self.dh = n_heads, d_model // n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        gen = torch.Generator().manual_seed(seed)
        self.register_buffer("proj", orthogonal_gaussian(nb_features, self.dh, gen))  # [m, dh]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, g, d = x.shape  # [B, G, d]
        q, k, v = self.qkv(x).view(b, g, 3, self.h, self.dh).permute(2, 0, 3, 1, 4)  # [B,H,G,dh]
        with torch.autocast(device_type=x.device.type, enabled=False):
            out = linear_attention(softmax_features(q, self.proj, True),
                                   softmax_features(k, self.proj, False), v)
        out = out.to(x.dtype).transpose(1, 2).reshape(b, g, d)  # [B, G, d]
        return self.out(out)


class PerformerLayer(nn.Module):
    """Pre-norm: x + Attn(LN x), then x + FF(LN x)."""

    def __init__(self, d_model: int, n_heads: int, nb_features: int, ff_mult: int,
                 dropout: float, seed: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.attn = FavorAttention(d_model, n_heads, nb_features, seed)
        self.norm2 = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(nn.Linear(d_model, ff_mult * d_model), nn.GELU(),
                                nn.Dropout(dropout), nn.Linear(ff_mult * d_model, d_model))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.norm1(x)))  # [B, G, d]
        return x + self.drop(self.ff(self.norm2(x)))

