"""Stage 1: a denoising autoencoder over whole expression profiles.

``genes -> 4096 -> 1024 -> 320 -> 1024 -> 4096 -> genes`` (widths from the config). Its 320-d
latent is the sample context that stage 2 adds to every gene token. It is trained on *masked*
inputs (the same masking as stage 2), so the context never carries the values the transformer
must predict, and on its own it is a masked-gene baseline. It works on per-gene z-scores
(``GeneScaler``); input and output are log1p.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from bulkfm.model.normalize import GeneScaler


def _mlp(widths: Sequence[int], dropout: float, last_plain: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if not (last_plain and i == len(widths) - 2):
            layers += [nn.LayerNorm(b), nn.GELU(), nn.Dropout(dropout)]
    return nn.Sequential(*layers)


class Autoencoder(nn.Module):
    def __init__(self, n_genes: int, hidden: Sequence[int] = (4096, 1024), latent: int = 320,
                 dropout: float = 0.0, gene_mean: torch.Tensor | None = None,
                 gene_std: torch.Tensor | None = None, mask_value: float = -10.0) -> None:
        super().__init__()
        self.scaler = GeneScaler(n_genes, gene_mean, gene_std, mask_value)
        widths = [n_genes, *hidden, latent]
        self.encoder = _mlp(widths, dropout, last_plain=True)  # [B, G] -> [B, latent]
        self.decoder = _mlp(widths[::-1], dropout, last_plain=True)  # [B, latent] -> [B, G]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.scaler(x))  # x [B, G] (masked = mask value) -> [B, latent]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encode(x)  # [B, latent]
        return self.scaler.inverse(self.decoder(z)), z  # [B, G] log1p, [B, latent]
