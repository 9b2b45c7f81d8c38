"""The model's sample embedding: named blocks, each standardised with training-split statistics
and weighted, saved with the model so ``bulkfm embed`` on new data reproduces it.

Blocks (all computed by the trained model from a sample's log1p values):

    pca     PCA-N of the raw log1p, fitted on the training samples (the readout's PCA)
    ae      the AE latent (stage 1, frozen in stage 2: the sample context of every token)
    pooled  the graph transformer's final hidden states pooled over genes

    z_b = (X_b - mean_b) / sd_b                            per feature, training split
    pca block:     z_b / sqrt(dim_b)
    learned block: z_b @ V_b / sqrt(sum of kept variances)  V_b = first k_b principal axes
    embedding = [ w_b * block_b  for each block b with w_b > 0 ]

Each block has total variance w_b^2 whatever its width, so no block dominates a distance or a
PCA by having more columns. A learned block (ae, pooled) is cut to its effective number of
dimensions, k_b = ceil of the participation ratio (sum lambda)^2 / sum lambda^2 of its
standardised training-split covariance: a 64-wide AE latent has ~8-16 effective dimensions,
and a standardising linear probe (every column brought to variance 1) would otherwise give
its ~50 near-empty directions as much say as the PCA block's real ones. The PCA block is
principal components already and stays as the PCA-N baseline defines it. Which blocks (and
weights) a run uses is fitted on the training + validation splits (bulkfm.train.choose; never
the test split) and recorded in ``report``. Why this definition and the measurements:
docs/model.md section 2.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

BLOCKS = ("pca", "ae", "pooled")
REDUCED = ("ae", "pooled")  # learned blocks, cut to their effective dimension


@dataclass
class SampleEmbedding:
    weights: dict[str, float]  # block -> weight (0 = left out)
    mean: dict[str, np.ndarray]  # block -> [dim] training-split mean
    sd: dict[str, np.ndarray]  # block -> [dim] training-split s.d. (floored)
    report: dict[str, Any] = field(default_factory=dict)
    # block -> [dim, k] principal axes / sqrt(kept variance); a block without one is scaled by
    # 1/sqrt(dim) (runs saved before the reduction have none)
    proj: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def blocks(self) -> list[str]:
        return [b for b in BLOCKS if self.weights.get(b, 0.0) > 0]

    @property
    def dims(self) -> dict[str, int]:
        """Columns each used block contributes."""
        return {b: int(self.proj[b].shape[1]) if b in self.proj else int(len(self.mean[b]))
                for b in self.blocks}

    def __call__(self, parts: dict[str, np.ndarray | None]) -> np.ndarray:
        """{block: [B, dim]} -> [B, sum of used dims] float32."""
        cols = []
        for b in self.blocks:
            x = parts.get(b)
            if x is None:
                raise ValueError(f"sample embedding: block {b!r} is part of this model's "
                                 "embedding but was not computed (a model without an AE or "
                                 "a readout without a PCA cannot reproduce it)")
            z = (x - self.mean[b]) / self.sd[b]
            cols.append(self.weights[b] * (z @ self.proj[b] if b in self.proj
                                           else z / np.sqrt(x.shape[1])))
        return np.concatenate(cols, axis=1).astype(np.float32)

    # ------------------------------------------------------------------- files
    def arrays(self) -> dict[str, np.ndarray]:
        out = {}
        for b in self.mean:
            out[f"embedding_mean_{b}"] = self.mean[b].astype(np.float32)
            out[f"embedding_sd_{b}"] = self.sd[b].astype(np.float32)
        for b, v in self.proj.items():
            out[f"embedding_proj_{b}"] = v.astype(np.float32)
        return out

    def meta(self) -> dict[str, Any]:
        return {"weights": self.weights, "report": self.report}

    @classmethod
    def from_saved(cls, meta: dict[str, Any] | None,
                   arrays: dict[str, np.ndarray]) -> SampleEmbedding | None:
        if not meta:
            return None
        blocks = [b for b in BLOCKS if f"embedding_mean_{b}" in arrays]
        return cls(weights={k: float(v) for k, v in meta["weights"].items()},
                   mean={b: arrays[f"embedding_mean_{b}"] for b in blocks},
                   sd={b: arrays[f"embedding_sd_{b}"] for b in blocks},
                   report=meta.get("report", {}),
                   proj={b: arrays[f"embedding_proj_{b}"] for b in blocks
                         if f"embedding_proj_{b}" in arrays})


def effective_axes(z: np.ndarray) -> np.ndarray:
    """Standardised training rows z [n, dim] -> [dim, k] principal axes scaled so the
    projection has total variance 1; k = ceil(participation ratio of the covariance)."""
    _, sv, vt = np.linalg.svd(z - z.mean(0), full_matrices=False)
    var = sv ** 2 / len(z)  # like sd: population variance of the training rows
    if var.sum() <= 0:  # a constant block: one axis, nothing to scale
        return vt[:1].T.copy()
    k = int(np.ceil(var.sum() ** 2 / (var ** 2).sum() - 1e-9))
    k = max(1, min(k, len(var)))
    return (vt[:k].T / np.sqrt(var[:k].sum())).astype(np.float32)


def fit_embedding(parts_train: dict[str, np.ndarray | None], weights: dict[str, float],
                  report: dict[str, Any] | None = None) -> SampleEmbedding:
    """A SampleEmbedding with ``weights``, the per-feature statistics of the training rows and
    the effective axes of each learned block (REDUCED)."""
    mean, sd, proj = {}, {}, {}
    for b, x in parts_train.items():
        if x is None:
            continue
        mean[b] = x.mean(0)
        s = x.std(0)
        sd[b] = np.maximum(s, 1e-6 * max(1.0, float(s.max())))  # constant column: no blow-up
        if b in REDUCED:
            proj[b] = effective_axes((x - mean[b]) / sd[b])
    return SampleEmbedding({b: float(w) for b, w in weights.items() if b in mean}, mean, sd,
                           dict(report or {}), proj)
