"""Small real matrices for the graph tests: TCGA RNASeqV2 genes, written as a bulkfm store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bulkfm.matrix.store import MatrixWriter, open_matrix

TCGA = "tcga_rnaseqv2_6cohorts/expression_rsem_normalized.genes_x_samples.parquet"


@pytest.fixture(scope="session")
def tcga_log1p(shared_data: Path) -> tuple[np.ndarray, list[str], list[str]]:
    """log1p(RSEM) of 300 real TCGA genes (the most variable, plus the first few) x 317 samples."""
    m = open_matrix(shared_data / TCGA)
    x = m.rows(np.arange(m.shape[0]))  # [317, 20531] log1p
    order = np.argsort(-x.var(axis=0))
    cols = np.unique(np.concatenate([order[:290], np.arange(10)]))
    return x[:, cols], [m.genes[i] for i in cols], list(m.samples)


@pytest.fixture(scope="session")
def store_writer():
    """``write(path, x, genes, samples) -> Path``: a one-layer (log1p_tpm) bulkfm store."""
    return _write_store


@pytest.fixture(scope="session")
def split_writer():
    """``write(path, samples, train_mask) -> Path``: a splits.tsv with train/test."""
    return _write_split


def _write_store(path: Path, x: np.ndarray, genes: list[str], samples: list[str]) -> Path:
    w = MatrixWriter(path, pd.DataFrame({"gene_id": genes, "gene_name": genes}),
                     pd.DataFrame({"sample_id": samples}), layers=("log1p_tpm",))
    w.write(0, log1p_tpm=x)
    return w.close()


def _write_split(path: Path, samples: list[str], train: np.ndarray) -> Path:
    split = np.where(train, "train", "test")
    pd.DataFrame({"sample_id": samples, "split": split}).to_csv(path, sep="\t", index=False)
    return path
