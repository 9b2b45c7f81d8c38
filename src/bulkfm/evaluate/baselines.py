"""Masked-gene baselines: the train gene mean, and kNN imputation over train samples.

kNN: for each held-out sample, distances to the reference samples use only its *observed*
genes (masked ones are unknown), and a masked gene is predicted as the mean over the k nearest
references. The reference set is at most ``max_reference`` train samples (a seeded subset), so
memory is bounded whatever the number of training samples.
"""

from __future__ import annotations

import numpy as np
import torch


def gene_mean(means: np.ndarray, batch: int) -> np.ndarray:
    return np.broadcast_to(means.astype(np.float32), (batch, means.shape[0]))


def knn_impute(x: np.ndarray, mask: np.ndarray, reference: np.ndarray, k: int = 10,
               exclude: np.ndarray | None = None) -> np.ndarray:
    """x [B, G] (values under mask ignored), mask bool [B, G], reference [R, G] -> [B, G].

    ``exclude[b]`` = index of a reference row to skip for sample b (itself), or -1.
    """
    xt = torch.from_numpy(np.where(mask, 0.0, x).astype(np.float32))
    w = torch.from_numpy((~mask).astype(np.float32))  # observed
    ref = torch.from_numpy(reference.astype(np.float32))
    # Σ_obs (x - r)² = Σ w x² - 2 (w x)·r + w·r²   -> [B, R]
    d = (w * xt * xt).sum(1, keepdim=True) - 2 * xt @ ref.T + w @ (ref * ref).T
    if exclude is not None:
        rows = torch.arange(len(x))
        ok = torch.from_numpy(exclude >= 0)
        d[rows[ok], torch.from_numpy(exclude)[ok]] = float("inf")
    kk = min(k, ref.shape[0] - (1 if exclude is not None and (exclude >= 0).any() else 0))
    idx = d.topk(max(1, kk), dim=1, largest=False).indices  # [B, k]
    return ref[idx].mean(1).numpy()  # [B, G]
