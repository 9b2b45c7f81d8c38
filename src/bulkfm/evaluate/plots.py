"""Evaluation figures (PNG, Agg): t-SNE of embeddings coloured by label, reconstruction."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bulkfm.common.figures import pyplot, save_png


def plot_tsne(panels: dict[str, np.ndarray], labels: np.ndarray | None, png: Path,
              seed: int = 0) -> Path:
    """One t-SNE panel per embedding (same samples), coloured by label."""
    from sklearn.manifold import TSNE

    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.6), squeeze=False)
    classes = np.unique(labels) if labels is not None else np.array(["all"])
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    for ax, (name, feats) in zip(axes[0], panels.items(), strict=True):
        perplexity = max(2.0, min(30.0, (len(feats) - 1) / 3))
        xy = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed
                  ).fit_transform(feats.astype(np.float64))
        for i, c in enumerate(classes):
            sel = labels == c if labels is not None else np.ones(len(xy), bool)
            ax.scatter(xy[sel, 0], xy[sel, 1], s=10, color=cmap(i % cmap.N), label=str(c))
        ax.set_title(name, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    if labels is not None:
        axes[0][-1].legend(fontsize=7, markerscale=1.5, loc="best")
    fig.suptitle(f"t-SNE of {len(next(iter(panels.values())))} samples")
    fig.tight_layout()
    return save_png(fig, png, dpi=110)


def plot_reconstruction(points: dict[str, tuple[np.ndarray, np.ndarray]],
                        scores: dict[str, dict[str, float]], png: Path) -> Path:
    """Left: predicted vs true masked values per method; right: PCC and MSE bars."""
    plt = pyplot()
    n = len(points)
    fig, axes = plt.subplots(1, n + 1, figsize=(4 * (n + 1), 4))
    for ax, (name, (t, p)) in zip(axes[:n], points.items(), strict=True):
        ax.hexbin(t, p, gridsize=50, bins="log", mincnt=1)
        lim = [float(min(t.min(), p.min())), float(max(t.max(), p.max()))]
        ax.plot(lim, lim, "k--", lw=0.8)
        ax.set_title(f"{name}: PCC {scores[name]['pcc']:.3f}", fontsize=10)
        ax.set_xlabel("true log1p (masked)")
        ax.set_ylabel("predicted")
    names = list(scores)
    ax = axes[n]
    ax.bar(names, [scores[m]["pcc"] for m in names], color="tab:blue")
    ax.set_ylabel("PCC on masked values")
    ax.set_ylim(min(0.0, min(scores[m]["pcc"] for m in names)), 1)
    ax.tick_params(axis="x", rotation=30)
    for i, m in enumerate(names):
        ax.text(i, scores[m]["pcc"], f"{scores[m]['pcc']:.3f}\nMSE {scores[m]['mse']:.2f}",
                ha="center", va="bottom", fontsize=7)
    fig.tight_layout()
    return save_png(fig, png, dpi=110)
