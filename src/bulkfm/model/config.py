"""Model hyper-parameters: one frozen dataclass, saved as JSON beside every checkpoint."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from bulkfm.common.settings import check_keys


@dataclass
class ModelConfig:
    n_genes: int
    # Stage 1 autoencoder: genes -> ae_hidden... -> ae_latent -> reversed -> genes.
    ae_hidden: list[int] = field(default_factory=lambda: [4096, 1024])
    ae_latent: int = 320
    # Stage 2 graph transformer.
    d_model: int = 320
    n_layers: int = 2  # blocks of (GCN -> Performer layer)
    n_heads: int = 8
    nb_features: int = 128  # FAVOR+ random features per head
    ff_mult: int = 2
    dropout: float = 0.0
    use_gcn: bool = True
    use_esm2: bool = True  # gene identity from ESM2 (+ learned vector for genes without protein)
    esm2_dim: int = 0  # width of the ESM2 vectors (0 = none loaded)
    use_ae_context: bool = True
    ae_residual: bool = True  # predict a correction to the AE's reconstruction (needs the AE)
    ae_tokens: bool = True  # tokens also carry the AE reconstruction and observed residual
    ree_theta_min: float = 0.1  # geometric ladder of REE wavelengths, in log1p units
    ree_theta_max: float = 100.0
    mask_value: float = -10.0  # stands for "masked"; a measured zero stays 0
    # BulkFormer-paper switches (preset ``size: bulkformer``; off = the measured defaults).
    zero_masked_ree: bool = False  # expression embedding = 0 at masked genes (paper), not REE(-10)
    token_mlp: bool = False  # MLP (d -> 2d -> d) over the summed token (paper), before block 1
    pool: str = "mean"  # sample embedding: "mean" or "max" over genes of the final hidden states
    seed: int = 0  # seeds the FAVOR+ projection and parameter init

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        check_keys(data, {f.name for f in fields(cls)}, "model")
        data = {"ae_tokens": False, **data}  # configs written before the key existed
        cfg = cls(**data)
        if cfg.pool not in ("mean", "max"):
            raise ValueError(f"pool must be mean or max, got {cfg.pool!r}")
        return cfg
