"""Masked-gene baselines: the train gene mean, and kNN imputation over train samples.

kNN (``bulkfm.model.readout.knn_impute``, the same function the model's readout blends in):
for each held-out sample, distances to the reference samples use only its *observed* genes
(masked ones are unknown), and a masked gene is predicted as the mean over the k nearest
references. The reference set is at most ``max_reference`` train samples (a seeded subset), so
memory is bounded whatever the number of training samples.
"""

from __future__ import annotations

import numpy as np

from bulkfm.model.readout import knn_impute

__all__ = ["gene_mean", "knn_impute"]


def gene_mean(means: np.ndarray, batch: int) -> np.ndarray:
    return np.broadcast_to(means.astype(np.float32), (batch, means.shape[0]))
