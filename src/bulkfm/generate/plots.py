"""Report figures: UMAP of real vs generated profiles, and per-condition scatter of the real
change against the generated and baseline change."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np

from bulkfm.common.figures import pyplot, save_png

log = logging.getLogger(__name__)


def _embed2d(x: np.ndarray, seed: int) -> tuple[np.ndarray, str]:
    import umap  # umap-learn (numba): imported here, so only a report pays its start-up

    k = int(max(2, min(15, len(x) - 1)))
    with warnings.catch_warnings():  # "n_jobs overridden by random_state": seeded on purpose
        warnings.simplefilter("ignore", UserWarning)
        return umap.UMAP(n_neighbors=k, random_state=seed, n_jobs=1).fit_transform(x), "UMAP"


def plot_embedding(p_real: np.ndarray, p_fake: np.ndarray, keys: np.ndarray, png: Path,
                   seed: int = 0) -> Path | None:
    """p_real/p_fake [N, PCs] in the same PCA; keys [N] condition of each (same order)."""
    if len(p_real) < 5:
        return None
    xy, method = _embed2d(np.vstack([p_real, p_fake]), seed)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 5.5))
    conds = sorted(set(keys))
    cmap = plt.get_cmap("tab20")
    n = len(p_real)
    for i, c in enumerate(conds):
        sel = np.r_[keys == c, np.zeros(len(p_fake), bool)]
        self_ = np.r_[np.zeros(n, bool), keys == c]
        ax.scatter(*xy[sel].T, s=14, color=cmap(i % 20), marker="o", label=f"{c} real")
        ax.scatter(*xy[self_].T, s=14, color=cmap(i % 20), marker="x", label=f"{c} generated")
    ax.set_title(f"{method} of held-out real (o) and generated (x) profiles")
    ax.legend(fontsize=6, loc="best", ncol=1)
    fig.tight_layout()
    return save_png(fig, png, dpi=110)


def plot_deltas(items: list[tuple[str, bool, np.ndarray, np.ndarray, np.ndarray]], png: Path
                ) -> Path | None:
    """items: (condition, seen, real change, generated change, baseline change) [G] each."""
    if not items:
        return None
    plt = pyplot()
    cols = min(3, len(items))
    rows = -(-len(items) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.8 * rows), squeeze=False)
    for ax, (name, seen, real, gen, base) in zip(axes.flat, items, strict=False):
        ax.scatter(real, base, s=3, alpha=0.4, color="grey",
                   label="train mean" if seen else "additive")
        ax.scatter(real, gen, s=3, alpha=0.5, color="tab:blue", label="generator")
        lim = float(np.abs(np.r_[real, gen]).max())
        ax.plot([-lim, lim], [-lim, lim], lw=0.6, color="k")
        ax.set_title(f"{name} ({'seen' if seen else 'unseen'})", fontsize=7)
        ax.set_xlabel("real change vs grand mean", fontsize=7)
        ax.set_ylabel("predicted change", fontsize=7)
        ax.legend(fontsize=6, markerscale=3)
    for ax in list(axes.flat)[len(items):]:
        ax.axis("off")
    fig.tight_layout()
    return save_png(fig, png, dpi=110)
