"""Small real matrices for training tests: a TCGA subset (real data) written as the Parquet
gene x sample table users give ``bulkfm train``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

TCGA = "tcga_rnaseqv2_6cohorts"


def write_tcga_subset(shared: Path, out: Path, n_samples: int, n_genes: int,
                      seed: int = 0) -> tuple[Path, Path]:
    """Top-variance genes of a random sample subset; returns (matrix.parquet, labels.tsv)."""
    src = shared / TCGA / "expression_rsem_normalized.genes_x_samples.parquet"
    meta = pd.read_csv(shared / TCGA / "samples.tsv", sep="\t")
    rng = np.random.default_rng(seed)
    pick = meta.iloc[np.sort(rng.choice(len(meta), n_samples, replace=False))]
    table = pq.read_table(src, columns=["gene", *pick["sample_id"]]).to_pandas()
    values = np.log1p(table.drop(columns="gene").to_numpy())
    keep = np.sort(np.argsort(-values.var(axis=1))[:n_genes])
    sub = table.iloc[keep].reset_index(drop=True)
    matrix = out / "matrix.parquet"
    sub.to_parquet(matrix, index=False)
    labels = out / "labels.tsv"
    pick.rename(columns={"cohort": "label", "participant": "group"})[
        ["sample_id", "label", "group"]].to_csv(labels, sep="\t", index=False)
    return matrix, labels


@pytest.fixture(scope="session")
def tcga_small(shared_data: Path, tmp_path_factory) -> tuple[Path, Path]:
    return write_tcga_subset(shared_data, tmp_path_factory.mktemp("tcga_small"), 40, 60)


TINY_CONFIG = """
max_genes: 0
model: {ae_hidden: [32], ae_latent: 8, d_model: 16, n_layers: 1, n_heads: 2, nb_features: 8}
ae: {steps: 6, batch_size: 8, lr: 0.001}
transformer: {steps: 6, batch_size: 4, lr: 0.001}
context_extra_mask: 0.3
checkpoint_every: 2
eval_every: 3
warmup_steps: 2
num_threads: 1
"""


@pytest.fixture()
def tiny_config(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_CONFIG)
    return path


@pytest.fixture(scope="session")
def tcga_writer():
    """``write_tcga_subset`` for tests that need several subsets."""
    return write_tcga_subset


@pytest.fixture(scope="session")
def tiny_config_text() -> str:
    return TINY_CONFIG
