"""Gene tokens: token(g, s) = identity(g) + REE(x_sg) + proj(AE latent of s) [+ AE values].

Optional AE values (``ae_tokens``): per gene, the AE's reconstruction and, where the gene is
observed, its residual (measured - reconstruction), both in z units, through a Linear(2, d). With
them the graph and attention can propagate the AE's errors on observed genes to the masked
genes they correlate with, a correction that carries over to samples the AE has not seen.

Gene identity is ``proj(ESM2[g])`` for genes with a protein embedding and a learned vector for
the rest; with ESM2 switched off (or no embedding file) every gene gets a learned
``nn.Embedding`` row. Tokens are built per mini-batch on the device: memory O(B x G x d).
"""

from __future__ import annotations

import torch
from torch import nn

from bulkfm.model.ree import RotaryExpressionEmbedding


class GeneIdentity(nn.Module):
    """[G, d]: what a gene is, independent of the sample."""

    def __init__(self, n_genes: int, d_model: int, esm2: torch.Tensor | None = None,
                 has_protein: torch.Tensor | None = None) -> None:
        super().__init__()
        self.learned = nn.Embedding(n_genes, d_model)
        nn.init.normal_(self.learned.weight, std=0.02)
        self.use_esm2 = esm2 is not None
        if esm2 is not None:
            if esm2.shape[0] != n_genes:
                raise ValueError(f"ESM2 table has {esm2.shape[0]} rows for {n_genes} genes")
            has = has_protein if has_protein is not None else torch.ones(n_genes, dtype=torch.bool)
            # Frozen inputs, saved with the weights so a checkpoint is self-contained.
            self.register_buffer("esm2", esm2.float())  # [G, d_esm]
            self.register_buffer("has_protein", has.bool())  # [G]
            self.esm2_norm = nn.LayerNorm(esm2.shape[1])
            self.proj = nn.Linear(esm2.shape[1], d_model)

    def forward(self) -> torch.Tensor:
        learned = self.learned.weight  # [G, d]
        if not self.use_esm2:
            return learned
        esm = self.proj(self.esm2_norm(self.esm2))  # [G, d]
        return torch.where(self.has_protein.unsqueeze(-1), esm, learned)


class GeneTokenizer(nn.Module):
    def __init__(self, n_genes: int, d_model: int, *, esm2: torch.Tensor | None,
                 has_protein: torch.Tensor | None, context_dim: int | None,
                 theta_min: float, theta_max: float, ae_values: bool = False,
                 zero_masked: bool = False, token_mlp: bool = False,
                 mask_value: float = -10.0) -> None:
        super().__init__()
        self.zero_masked, self.mask_value = zero_masked, mask_value
        self.identity = GeneIdentity(n_genes, d_model, esm2, has_protein)
        self.ree = RotaryExpressionEmbedding(d_model, theta_min, theta_max)
        self.context = nn.Linear(context_dim, d_model) if context_dim else None
        self.ae_values = nn.Linear(2, d_model) if ae_values else None
        # BulkFormer: an MLP over the summed token, residual so an untrained one is the identity.
        self.mlp = (nn.Sequential(nn.LayerNorm(d_model), nn.Linear(d_model, 2 * d_model),
                                  nn.GELU(), nn.Linear(2 * d_model, d_model))
                    if token_mlp else None)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None,
                ae_values: torch.Tensor | None = None) -> torch.Tensor:
        # x [B, G] (masked = mask value), context [B, c], ae_values [B, G, 2] -> tokens [B, G, d]
        ree = self.ree(x)
        if self.zero_masked:  # BulkFormer: a masked gene carries no expression embedding
            ree = ree.masked_fill((x == self.mask_value).unsqueeze(-1), 0.0)
        tokens = ree + self.identity().unsqueeze(0)
        if self.context is not None:
            if context is None:
                raise ValueError("this model was built with an AE context; pass the AE latent")
            tokens = tokens + self.context(context).unsqueeze(1)
        if self.ae_values is not None:
            if ae_values is None:
                raise ValueError("this model was built with AE value tokens; pass them")
            tokens = tokens + self.ae_values(ae_values.to(tokens.dtype))
        if self.mlp is not None:
            tokens = tokens + self.mlp(tokens)
        return tokens
