"""The demo's report says what each half ran on, and its model numbers are results on the
bundled TCGA matrix (317 samples, split by participant), not on 4 chr19 samples."""

from __future__ import annotations

import json

import pandas as pd
import pytest

pytestmark = pytest.mark.workflow


def test_report_states_what_the_demo_shows(demo_run, repo):
    text = (demo_run / "report" / "report.md").read_text()
    ctx = text.split("## What this run shows, and what it cannot", 1)[1].split("\n## ", 1)[0]
    assert "**Quantified here:** 4 samples x 1,468 genes" in ctx and "too few to train" in ctx
    assert "tcga_6cohorts_top1000.genes_x_samples.parquet" in ctx and "did not see the quantified" in ctx
    assert "**Sex from expression:** not run" in ctx and "XIST" in ctx
    m = json.loads((demo_run / "evaluate" / "metrics.json").read_text())
    assert m["n_genes"] == 1000 and m["n_held_out"] >= 50  # a real held-out set, not 1-2 samples
    rec = m["reconstruction"]
    assert rec["model"]["pcc"] > rec["gene_mean"]["pcc"]  # real signal, which 4 samples never gave
    assert m["probe"]["n_classes"] == 6
    split = pd.read_csv(demo_run / "split" / "splits.tsv", sep="\t")
    assert set(split["split"]) == {"train", "val", "test"} and len(split) == 317
    # a participant never spans two splits
    labels = pd.read_csv(repo / "resources" / "tcga_demo" / "labels.tsv", sep="\t")[["sample_id", "group"]]
    both = labels.merge(split[["sample_id", "split"]], on="sample_id")
    assert len(both) == 317 and (both.groupby("group")["split"].nunique() == 1).all()
    assert (demo_run / "evaluate" / "tsne.png").exists()
