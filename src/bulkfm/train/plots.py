"""Training curves from metrics.csv (PNG, Agg backend)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bulkfm.common.figures import pyplot, save_png


def plot_training_curves(metrics_csv: Path, png: Path) -> Path | None:
    plt = pyplot()

    if not metrics_csv.exists():
        return None
    df = pd.read_csv(metrics_csv)
    stages = [s for s in ("ae", "model") if (df["stage"] == s).any()]
    if not stages:
        return None
    fig, axes = plt.subplots(1, len(stages), figsize=(5.5 * len(stages), 4), squeeze=False)
    titles = {"ae": "stage 1: autoencoder (MSE, all genes)",
              "model": "stage 2: graph transformer (MSE, masked genes)"}
    for ax, stage in zip(axes[0], stages, strict=True):
        s = df[df["stage"] == stage]
        ax.plot(s["step"], s["loss"], lw=1, alpha=0.7, label="train")
        v = s.dropna(subset=["val_loss"])
        if len(v):
            ax.plot(v["step"], v["val_loss"], "o-", label="validation")
        ax.set_title(titles[stage], fontsize=10)
        ax.set_xlabel("step")
        ax.set_ylabel("MSE (log1p units²)")
        ax.set_yscale("log")
        ax.legend()
    fig.tight_layout()
    save_png(fig, png, dpi=110)
    return png
