"""Streaming reconstruction metrics: pooled PCC and MSE over all masked values, per-sample PCC.

Pooled sums (n, Σx, Σy, Σx², Σy², Σxy) make the metric exact without keeping the values.
"""

from __future__ import annotations

import math

import numpy as np


class PooledStats:
    def __init__(self) -> None:
        self.n = 0
        self.sx = self.sy = self.sxx = self.syy = self.sxy = self.se = 0.0
        self.sample_pcc: list[float] = []

    def add(self, truth: np.ndarray, pred: np.ndarray, mask: np.ndarray) -> None:
        """truth, pred [B, G] float, mask bool [B, G]: accumulate the masked entries."""
        t = truth[mask].astype(np.float64)
        p = pred[mask].astype(np.float64)
        self.n += t.size
        self.sx += t.sum()
        self.sy += p.sum()
        self.sxx += (t * t).sum()
        self.syy += (p * p).sum()
        self.sxy += (t * p).sum()
        self.se += ((t - p) ** 2).sum()
        for i in range(truth.shape[0]):
            self.sample_pcc.append(pearson(truth[i, mask[i]], pred[i, mask[i]]))

    def result(self) -> dict[str, float]:
        n = self.n
        cov = self.sxy - self.sx * self.sy / n
        vx = self.sxx - self.sx**2 / n
        vy = self.syy - self.sy**2 / n
        pcc = cov / math.sqrt(vx * vy) if vx > 0 and vy > 0 else float("nan")
        per = np.asarray(self.sample_pcc, dtype=np.float64)
        return {"pcc": pcc, "mse": self.se / n,
                "sample_pcc_mean": float(np.nanmean(per)) if per.size else float("nan"),
                "n_masked": n, "n_samples": len(self.sample_pcc)}


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    a = a.astype(np.float64) - a.mean()
    b = b.astype(np.float64) - b.mean()
    den = math.sqrt(float((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / den) if den > 0 else float("nan")
