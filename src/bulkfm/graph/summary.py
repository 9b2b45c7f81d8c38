"""What a built gene graph looks like: counts, degree distribution, a histogram picture."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from bulkfm.common.figures import pyplot, save_png


def graph_summary(source: np.ndarray, target: np.ndarray, pcc: np.ndarray, n_genes: int,
                  n_constant: int) -> dict[str, Any]:
    """Numbers a user checks before training: edges, isolated genes, degrees, PCC spread."""
    out_deg = np.bincount(source, minlength=n_genes)
    in_deg = np.bincount(target, minlength=n_genes)
    touched = (out_deg + in_deg) > 0
    pairs = set(zip(source.tolist(), target.tolist(), strict=True))
    reciprocal = sum(1 for s, t in pairs if (t, s) in pairs)
    q = np.quantile(pcc, [0.0, 0.25, 0.5, 0.75, 1.0]).tolist() if len(pcc) else [None] * 5
    return {
        "n_genes": int(n_genes),
        "n_edges": int(len(source)),
        "n_isolated_genes": int((~touched).sum()),
        "n_constant_genes": int(n_constant),
        "n_genes_without_neighbours": int((out_deg == 0).sum()),
        "n_negative_edges": int((pcc < 0).sum()),
        "reciprocal_edge_fraction": float(reciprocal / len(pairs)) if pairs else 0.0,
        "out_degree": {"mean": float(out_deg.mean()), "max": int(out_deg.max(initial=0)),
                       "histogram": np.bincount(out_deg).tolist()},
        "in_degree": {"mean": float(in_deg.mean()), "median": float(np.median(in_deg)),
                      "max": int(in_deg.max(initial=0))},
        "pcc_quantiles": dict(zip(["min", "q25", "median", "q75", "max"], q, strict=True)),
    }


def plot_degrees(path: str | os.PathLike[str], source: np.ndarray, target: np.ndarray,
                 n_genes: int, title: str) -> Path:
    """Two panels: out-degree (capped at top-k) and in-degree (hubs); isolated count in title."""
    plt = pyplot()

    out_deg = np.bincount(source, minlength=n_genes)
    in_deg = np.bincount(target, minlength=n_genes)
    isolated = int(((out_deg + in_deg) == 0).sum())
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    a.bar(np.arange(out_deg.max(initial=0) + 1), np.bincount(out_deg), color="#4C72B0")
    a.set(xlabel="out-degree (kept neighbours per gene)", ylabel="genes", yscale="log",
          title="out-degree")
    b.hist(in_deg, bins=min(60, max(int(in_deg.max(initial=0)), 1)), color="#DD8452")
    b.set(xlabel="in-degree (genes listing this gene)", ylabel="genes", yscale="log",
          title="in-degree")
    fig.suptitle(f"{title}: {len(source):,} edges, {n_genes:,} genes, {isolated:,} isolated")
    fig.tight_layout()
    path = Path(path)
    save_png(fig, path, dpi=110)
    return path
