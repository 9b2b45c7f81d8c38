"""Collect training and evaluation outputs into one folder with a Markdown summary.

    OUT/report.md              tables (reconstruction, probes, training) + the figures
    OUT/*.png, OUT/*.tsv       copies of the figures and tables it shows
    OUT/metrics.json           the evaluation metrics, unchanged
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd

from bulkfm.common.atomic import atomic_path


def markdown_table(df: pd.DataFrame) -> str:
    """A DataFrame as a GitHub Markdown table (floats to 4 decimals)."""
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, row in df.iterrows():
        cells = [f"{v:.4f}" if isinstance(v, float) else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def build_report(train_dir: str | os.PathLike[str], evaluate_dir: str | os.PathLike[str] | None,
                 out: str | os.PathLike[str], workflow_outdir: str | os.PathLike[str] | None = None) -> Path:
    train_dir = Path(train_dir)
    eval_dir = Path(evaluate_dir) if evaluate_dir else train_dir / "evaluate"
    out = Path(out)
    with atomic_path(out) as tmp:
        tmp.mkdir()
        md = ["# bulkfm report", ""]
        if workflow_outdir:
            from bulkfm.report.context import run_context

            mj0 = eval_dir / "metrics.json"
            ctx = run_context(workflow_outdir, json.loads(mj0.read_text()) if mj0.exists() else None)
            if ctx:
                md += ["## What this run shows, and what it cannot", "", *ctx, ""]
        summary = train_dir / "summary.json"
        if summary.exists():
            s = json.loads(summary.read_text())
            md += ["## Training", "", markdown_table(pd.DataFrame([s]).drop(columns=["out"],
                                                                       errors="ignore")), ""]
        metrics_csv = train_dir / "metrics.csv"
        if metrics_csv.exists():
            m = pd.read_csv(metrics_csv)
            last = m.groupby("stage", sort=False).agg(
                steps=("step", "max"), first_loss=("loss", "first"), last_loss=("loss", "last"),
                last_val_loss=("val_loss", lambda v: v.dropna().iloc[-1] if v.notna().any()
                               else float("nan"))).reset_index()
            md += [markdown_table(last), ""]
            shutil.copy(metrics_csv, tmp / "metrics.csv")
        if (train_dir / "training_curves.png").exists():
            shutil.copy(train_dir / "training_curves.png", tmp / "training_curves.png")
            md += ["![training curves](training_curves.png)", ""]
        mj = eval_dir / "metrics.json"
        if mj.exists():
            result = json.loads(mj.read_text())
            shutil.copy(mj, tmp / "metrics.json")
            md += ["## Masked-gene reconstruction", "",
                   f"Held out: {result['n_held_out']} samples ({result['held_out']}); "
                   f"{result['mask_fraction']:.0%} of {result['n_genes']} genes masked.", ""]
            rec = pd.DataFrame([{"method": k, **v} for k, v in result["reconstruction"].items()])
            md += [markdown_table(rec), ""]
            probe = result.get("probe")
            if probe:
                md += ["## Linear probes", "", f"Protocol: {probe['protocol']}.", ""]
                rows = [{"features": k, **v} for k, v in probe.items() if isinstance(v, dict)]
                md += [markdown_table(pd.DataFrame(rows)), ""]
        for name, title in (("reconstruction.png", "Reconstruction"), ("tsne.png", "t-SNE")):
            if (eval_dir / name).exists():
                shutil.copy(eval_dir / name, tmp / name)
                md += [f"![{title}]({name})", ""]
        for name in ("reconstruction.tsv", "probe.tsv"):
            if (eval_dir / name).exists():
                shutil.copy(eval_dir / name, tmp / name)
        (tmp / "report.md").write_text("\n".join(md) + "\n")
    return out
