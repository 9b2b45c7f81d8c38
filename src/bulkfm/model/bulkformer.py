"""BulkFormer-style model: tokens -> [GCN -> Performer] x n_layers -> masked-gene head.

    x [B, G] (log1p, masked genes = mask value)
      AE context   z = AE.encode(x)                       [B, 320]  (switchable)
      tokens       identity(g) + REE(x) + proj(z)          [B, G, d]
                   (+ Linear([AE recon, observed residual]) per gene, ``ae_tokens``)
      block x L    h = h + GCN(LN h);  h = Performer(h)    [B, G, d]  (GCN switchable)
      head         mean_g + std_g * (AE_recon_z + MLP(LN h))  [B, G]  (train gene stats)

The head's last layer starts at zero, so an untrained trunk predicts the AE's reconstruction
(or the gene mean without AE): the trunk learns what the graph and attention add on top
(``ae_residual``; switch it off to predict from the tokens alone).

The AE is part of the module (its weights are in the checkpoint) but is trained in stage 1 and
frozen in stage 2. Pooled hidden = mean (or max, ``pool``) of the final hidden states over
genes [B, d]: one block of the sample embedding of ``bulkfm embed``, beside the PCA of the
input and the AE latent (``bulkfm.model.sample_embedding``).
"""

from __future__ import annotations

import torch
from torch import nn

from bulkfm.model.autoencoder import Autoencoder
from bulkfm.model.config import ModelConfig
from bulkfm.model.gcn import GeneGraph, GraphConv
from bulkfm.model.normalize import GeneScaler
from bulkfm.model.performer import PerformerLayer
from bulkfm.model.tokens import GeneTokenizer


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, index: int) -> None:
        super().__init__()
        self.gcn_norm = nn.LayerNorm(cfg.d_model) if cfg.use_gcn else None
        self.gcn = GraphConv(cfg.d_model) if cfg.use_gcn else None
        self.performer = PerformerLayer(cfg.d_model, cfg.n_heads, cfg.nb_features, cfg.ff_mult,
                                        cfg.dropout, seed=cfg.seed * 1000 + index)

    def forward(self, h: torch.Tensor, adj: torch.Tensor | None) -> torch.Tensor:
        if self.gcn is not None:
            h = h + self.gcn(self.gcn_norm(h), adj)  # [B, G, d]
        return self.performer(h)


class BulkFormer(nn.Module):
    def __init__(self, cfg: ModelConfig, *, esm2: torch.Tensor | None = None,
                 has_protein: torch.Tensor | None = None, edge_index: torch.Tensor | None = None,
                 edge_weight: torch.Tensor | None = None, gene_mean: torch.Tensor | None = None,
                 gene_std: torch.Tensor | None = None) -> None:
        super().__init__()
        self.config = cfg
        self.scaler = GeneScaler(cfg.n_genes, gene_mean, gene_std, cfg.mask_value)
        if cfg.use_esm2 and esm2 is None:
            raise ValueError("use_esm2 is on but no ESM2 table was given")
        if cfg.use_gcn and edge_index is None:
            raise ValueError("use_gcn is on but no gene graph was given")
        self.ae = (Autoencoder(cfg.n_genes, cfg.ae_hidden, cfg.ae_latent, cfg.dropout,
                               gene_mean, gene_std, cfg.mask_value)
                   if cfg.use_ae_context else None)
        self.tokenizer = GeneTokenizer(
            cfg.n_genes, cfg.d_model, esm2=esm2 if cfg.use_esm2 else None,
            has_protein=has_protein, context_dim=cfg.ae_latent if cfg.use_ae_context else None,
            theta_min=cfg.ree_theta_min, theta_max=cfg.ree_theta_max,
            ae_values=cfg.use_ae_context and cfg.ae_tokens, zero_masked=cfg.zero_masked_ree,
            token_mlp=cfg.token_mlp, mask_value=cfg.mask_value)
        self.graph = (GeneGraph(edge_index, edge_weight if edge_weight is not None
                                else torch.ones(edge_index.shape[1]), cfg.n_genes)
                      if cfg.use_gcn else None)
        self.blocks = nn.ModuleList(Block(cfg, i) for i in range(cfg.n_layers))
        self.norm = nn.LayerNorm(cfg.d_model)
        self.head = nn.Sequential(nn.Linear(cfg.d_model, cfg.d_model), nn.GELU(),
                                  nn.Linear(cfg.d_model, 1))
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    def _ae(self, x: torch.Tensor, ae_input: torch.Tensor | None = None
            ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        """(AE latent [B, latent], AE reconstruction [B, G] z units, value tokens [B, G, 2])."""
        if self.ae is None:
            return None, None, None
        context = self.ae.encode(x if ae_input is None else ae_input)  # [B, latent]
        if not (self.config.ae_residual or self.config.ae_tokens):
            return context, None, None
        base = self.ae.decoder(context).float()  # [B, G] z units
        values = None
        if self.config.ae_tokens:
            observed = ~self.scaler.masked(x)
            resid = torch.where(observed, self.scaler(x) - base, torch.zeros_like(base))
            values = torch.stack([base, resid], dim=-1)  # [B, G, 2]
        return context, base, values

    def _trunk(self, x: torch.Tensor, context: torch.Tensor | None,
               values: torch.Tensor | None) -> torch.Tensor:
        h = self.tokenizer(x, context, values)  # [B, G, d]
        adj = self.graph.adjacency() if self.graph is not None else None
        for block in self.blocks:
            h = block(h, adj)
        return self.norm(h)

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, G] (masked = mask value) -> final hidden states [B, G, d]."""
        context, _, values = self._ae(x)
        return self._trunk(x, context, values)

    def forward(self, x: torch.Tensor, ae_input: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, G] log1p with masked genes = mask value -> predicted log1p [B, G].

        ``ae_input``: what the AE context sees instead of ``x`` (training only: a more heavily
        masked copy, so the AE errs on train samples as it does on unseen ones).
        """
        context, base, values = self._ae(x, ae_input)
        out = self.head(self._trunk(x, context, values)).squeeze(-1).float()  # [B, G] z units
        if self.config.ae_residual and base is not None:
            out = base + out
        return self.scaler.inverse(out)

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Unmasked x [B, G] -> (pooled hidden [B, d], per-gene hidden states [B, G, d]).

        Pooling over genes: mean (default) or max (``pool: max``, BulkFormer's). The full
        sample embedding adds PCA of the input (``bulkfm.model.readout``)."""
        h = self.hidden(x)
        pooled = h.float().amax(1) if self.config.pool == "max" else h.float().mean(1)
        return pooled, h
