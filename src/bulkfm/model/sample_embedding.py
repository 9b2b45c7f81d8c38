"""The model's sample embedding: named blocks, each standardised with training-split statistics
and weighted, saved with the model so ``bulkfm embed`` on new data reproduces it.

Blocks (all computed by the trained model from a sample's log1p values):

    pca     PCA-N of the raw log1p, fitted on the training samples (the readout's PCA)
    ae      the AE latent (stage 1, frozen in stage 2: the sample context of every token)
    pooled  the graph transformer's final hidden states pooled over genes

    embedding = [ w_b * (X_b - mean_b) / sd_b / sqrt(dim_b)  for each block b with w_b > 0 ]

mean_b / sd_b are per feature over the training split. The 1/sqrt(dim_b) makes each block's
total variance w_b^2 whatever its width, so no block dominates a distance or a PCA by having
more columns. Which blocks (and weights) a run uses is fitted on the training + validation
splits (bulkfm.train.choose; never the test split) and recorded in ``report``. Why this
definition and the measurements: docs/model.md section 2.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

BLOCKS = ("pca", "ae", "pooled")


@dataclass
class SampleEmbedding:
    weights: dict[str, float]  # block -> weight (0 = left out)
    mean: dict[str, np.ndarray]  # block -> [dim] training-split mean
    sd: dict[str, np.ndarray]  # block -> [dim] training-split s.d. (floored)
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def blocks(self) -> list[str]:
        return [b for b in BLOCKS if self.weights.get(b, 0.0) > 0]

    def __call__(self, parts: dict[str, np.ndarray | None]) -> np.ndarray:
        """{block: [B, dim]} -> [B, sum of used dims] float32."""
        cols = []
        for b in self.blocks:
            x = parts.get(b)
            if x is None:
                raise ValueError(f"sample embedding: block {b!r} is part of this model's "
                                 "embedding but was not computed (a model without an AE or "
                                 "a readout without a PCA cannot reproduce it)")
            cols.append(self.weights[b] * (x - self.mean[b]) / self.sd[b]
                        / np.sqrt(x.shape[1]))
        return np.concatenate(cols, axis=1).astype(np.float32)

    # ------------------------------------------------------------------- files
    def arrays(self) -> dict[str, np.ndarray]:
        out = {}
        for b in self.mean:
            out[f"embedding_mean_{b}"] = self.mean[b].astype(np.float32)
            out[f"embedding_sd_{b}"] = self.sd[b].astype(np.float32)
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
                   report=meta.get("report", {}))


def standardiser(parts_train: dict[str, np.ndarray], weights: dict[str, float],
                 report: dict[str, Any] | None = None) -> SampleEmbedding:
    """A SampleEmbedding with ``weights`` and the per-feature statistics of the training rows."""
    mean, sd = {}, {}
    for b, x in parts_train.items():
        if x is None:
            continue
        mean[b] = x.mean(0)
        s = x.std(0)
        sd[b] = np.maximum(s, 1e-6 * max(1.0, float(s.max())))  # constant column: no blow-up
    return SampleEmbedding({b: float(w) for b, w in weights.items() if b in mean}, mean, sd,
                           dict(report or {}))
