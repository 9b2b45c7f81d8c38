"""Model hyper-parameters: frozen dataclasses, saved as JSON beside every checkpoint.

``ModelSpec`` is what a training config sets (``train.model``); ``ModelConfig`` adds what the
data decides (gene count, ESM2 width) and the seed. Both check their cross-field rules when
they are built, so a bad pair (``d_model % n_heads``) stops before any training.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from bulkfm.common.settings import check_keys


@dataclass(frozen=True)
class ModelSpec:
    # Stage 1 autoencoder: genes -> ae_hidden... -> ae_latent -> reversed -> genes.
    ae_hidden: tuple[int, ...] = (4096, 1024)
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

    def __post_init__(self) -> None:
        # YAML/JSON give lists; a tuple keeps the frozen config unchangeable all the way down.
        object.__setattr__(self, "ae_hidden", tuple(int(w) for w in self.ae_hidden))
        if self.n_heads < 1 or self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by n_heads "
                             f"{self.n_heads}; set both so that d_model % n_heads == 0")
        if min((*self.ae_hidden, self.ae_latent, self.d_model, self.n_layers,
                self.nb_features, self.ff_mult)) < 1:
            raise ValueError("ae_hidden, ae_latent, d_model, n_layers, nb_features and ff_mult "
                             "must be >= 1")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if not 0 < self.ree_theta_min < self.ree_theta_max:
            raise ValueError("0 < ree_theta_min < ree_theta_max required, got "
                             f"{self.ree_theta_min}, {self.ree_theta_max}")
        if self.pool not in ("mean", "max"):
            raise ValueError(f"pool must be mean or max, got {self.pool!r}")

    @classmethod
    def keys(cls) -> frozenset[str]:
        return frozenset(f.name for f in fields(ModelSpec))

    def spec(self) -> ModelSpec:
        """The ``ModelSpec`` part (a ModelConfig without its data-given sizes)."""
        return ModelSpec(**{k: getattr(self, k) for k in ModelSpec.keys()})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class ModelConfig(ModelSpec):
    n_genes: int
    esm2_dim: int = 0  # width of the ESM2 vectors (0 = none loaded)
    seed: int = 0  # seeds the FAVOR+ projection and parameter init

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        check_keys(data, {f.name for f in fields(cls)}, "model")
        data = {"ae_tokens": False, **data}  # configs written before the key existed
        return cls(**data)
