"""Real data: on a TCGA subset the model's loss falls, it beats the gene-mean baseline on
held-out participants, and evaluate/report write what they promise."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from bulkfm.cli import main

CONFIG = """
max_genes: 150
model: {ae_hidden: [128], ae_latent: 16, d_model: 32, n_layers: 1, n_heads: 4, nb_features: 16}
ae: {steps: 150, batch_size: 32, lr: 0.002}
transformer: {steps: 40, batch_size: 16, lr: 0.001}
checkpoint_every: 1000
eval_every: 20
num_threads: 1
"""


@pytest.fixture(scope="module")
def trained(shared_data: Path, tmp_path_factory) -> tuple[Path, Path, Path]:
    tmp = tmp_path_factory.mktemp("tcga_eval")
    src = shared_data / "tcga_rnaseqv2_6cohorts"
    samples = pd.read_csv(src / "samples.tsv", sep="\t")
    labels = tmp / "labels.tsv"
    samples.rename(columns={"cohort": "label", "participant": "group"})[
        ["sample_id", "label", "group"]].to_csv(labels, sep="\t", index=False)
    # all 317 samples, the 2,000 most variable genes (train picks its top 150 of them)
    table = pq.read_table(src / "expression_rsem_normalized.genes_x_samples.parquet").to_pandas()
    var = np.log1p(table.drop(columns="gene").to_numpy()).var(axis=1)
    matrix = tmp / "tcga.parquet"
    table.iloc[np.sort(np.argsort(-var)[:2000])].to_parquet(matrix, index=False)
    cfg = tmp / "cfg.yaml"
    cfg.write_text(CONFIG)
    out = tmp / "run"
    assert main(["train", "--matrix", str(matrix), "--labels", str(labels), "--out", str(out),
                 "--config", str(cfg), "--no-progress"]) == 0
    return matrix, labels, out


def test_loss_falls_and_model_beats_gene_mean(trained, capsys) -> None:
    matrix, labels, out = trained
    metrics = pd.read_csv(out / "metrics.csv")
    ae = metrics[metrics.stage == "ae"]
    assert ae["loss"].to_numpy()[-10:].mean() < 0.7 * ae["loss"].to_numpy()[:10].mean()
    val = ae["val_loss"].dropna().to_numpy()
    assert val[-1] < val[0]  # held-out (validation participants) loss falls too
    # Stage 2 starts from the AE's reconstruction (zero-initialised residual head): the saved
    # stage-2 model (best by validation) must not be worse on the validation samples' masked
    # genes than that start, the chosen AE's figure in choices.json (same split and mask
    # fraction; 2 % for the masks, drawn per batch and the stages' batch sizes differ).
    ae_val = min(json.loads((out / "choices.json").read_text())["ae_regularisation"][
        "validation_masked_mse"].values())
    best = json.loads((out / "model" / "config.json").read_text())["best_val_loss"]
    assert best <= ae_val * 1.02
    capsys.readouterr()
    assert main(["evaluate", str(out), "--matrix", str(matrix), "--labels", str(labels),
                 "--probe-repeats", "1", "--no-progress"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    result = json.loads(last)  # evaluate ends with one JSON line
    rec = result["reconstruction"]
    assert result["held_out"].startswith("test split")
    assert rec["model"]["pcc"] > rec["gene_mean"]["pcc"] + 0.1
    assert rec["model"]["mse"] < rec["gene_mean"]["mse"]
    assert result["model_better_samples"]["gene_mean"] > 0.9  # paired, per held-out sample
    # The model's answer is the readout's convex blend of trunk, AE and kNN, fitted on the
    # validation participants: on the held-out ones it is not worse than its parts.
    assert result["readout"]["parts"] == ["trunk", "ae", "knn"]
    assert abs(sum(result["readout"]["mean_weights"].values()) - 1) < 1e-3
    for part in ("trunk", "ae", "knn"):
        assert rec["model"]["mse"] <= rec[part]["mse"] * 1.02, (part, rec)
        assert rec["model"]["pcc"] >= rec[part]["pcc"] - 0.005, (part, rec)
    assert 0 <= result["paired"]["knn"]["wilcoxon_p"] <= 1
    pcc = pd.read_csv(out / "evaluate" / "sample_pcc.tsv", sep="\t")
    assert len(pcc) == result["n_held_out"] and {"model", "knn", "ae"} <= set(pcc.columns)
    probe = result["probe"]
    assert probe["model"]["n_test"] == result["n_held_out"]
    assert probe["pca_raw"]["accuracy"] > 0.7  # six cancer types are easy to tell apart
    rep = result["probe_repeated_cv"]  # every labelled train + test sample, grouped folds
    assert rep["pca_raw"]["n"] == probe["pca_raw"]["n_train"] + probe["pca_raw"]["n_test"]
    assert rep["model"]["accuracy"] > 0.7 and rep["pca_raw"]["accuracy"] > 0.7
    assert isinstance(result["probe_model_ge_pca_repeated_cv"], bool)
    for name in ("metrics.json", "reconstruction.tsv", "probe.tsv", "reconstruction.png",
                 "tsne.png"):
        assert (out / "evaluate" / name).exists(), name
    report = out.parent / "report"
    assert main(["report", "--train", str(out), "-o", str(report)]) == 0
    text = (report / "report.md").read_text()
    assert "gene_mean" in text and "![t-SNE](tsne.png)" in text
    assert (report / "training_curves.png").exists()


def test_checkpoint_on_other_genes_is_refused_or_masked(trained, tmp_path: Path, capsys) -> None:
    matrix, labels, out = trained
    table = pd.read_parquet(matrix)
    genes = [g for g in (out / "genes.txt").read_text().split()]
    fewer = tmp_path / "fewer.parquet"
    table[~table["gene"].isin(genes[:10])].to_parquet(fewer, index=False)
    rc = main(["evaluate", str(out), "--matrix", str(fewer), "--no-progress"])
    assert rc == 2 and "another gene list" in capsys.readouterr().err
    # documented recovery: accept a few missing genes, fed to the model as masked
    emb = tmp_path / "emb"
    assert main(["embed", str(out), "--matrix", str(fewer), "-o", str(emb),
                 "--allow-missing-genes", "0.1"]) == 0
    assert len(pd.read_parquet(emb / "sample_embeddings.parquet")) == 317
