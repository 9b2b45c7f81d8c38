"""Matrix store: built from per-sample vectors, read in row batches; Parquet and ARCHS4 inputs."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from bulkfm.matrix.build import build_matrix, import_archs4
from bulkfm.matrix.store import MatrixStore, iter_row_batches, open_matrix

GENES = pd.DataFrame({"gene_id": ["ENSG1", "ENSG2", "ENSG3", "ENSG4"],
                      "gene_name": ["A", "B", "C", "D"],
                      "gene_type": ["protein_coding", "lncRNA", "protein_coding", "protein_coding"]})


def write_vectors(tmp_path, n):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        counts = rng.integers(0, 100, 4).astype(np.float32)
        tpm = rng.uniform(0, 1000, 4).astype(np.float32)
        length = rng.uniform(100, 2000, 4).astype(np.float32)
        p = tmp_path / f"s{i}.npy"
        np.save(p, np.stack([counts, tpm, length]))
        paths.append(p)
    return paths


def test_build_filters_renormalises_and_streams_in_chunks(tmp_path):
    paths = write_vectors(tmp_path, 7)
    samples = pd.DataFrame({"sample_id": [f"s{i}" for i in range(7)]})
    out = build_matrix(samples, paths, GENES, tmp_path / "m", chunk=3, progress=False)
    store = MatrixStore(out)
    assert store.genes == ["ENSG1", "ENSG3", "ENSG4"]  # lncRNA dropped, order kept
    assert store.shape == (7, 3)
    tpm = np.load(out / "tpm.npy")
    np.testing.assert_allclose(tpm.sum(axis=1), 1e6, rtol=1e-5)
    raw = np.load(paths[5])
    np.testing.assert_allclose(np.load(out / "counts.npy")[5], raw[0, [0, 2, 3]])
    np.testing.assert_allclose(store.rows([5, 1]), np.log1p(tpm[[5, 1]]), rtol=1e-6)
    batches = list(iter_row_batches(store, 4))
    assert [len(i) for i, _ in batches] == [4, 3]
    assert json.loads((out / "matrix.json").read_text())["n_samples"] == 7


def test_length_scaled_tpm_uses_the_mean_length_across_samples(tmp_path):
    paths = write_vectors(tmp_path, 3)
    samples = pd.DataFrame({"sample_id": ["a", "b", "c"]})
    out = build_matrix(samples, paths, GENES, tmp_path / "m", gene_types=None,
                       counts_from_abundance="lengthScaledTPM", progress=False)
    v = np.stack([np.load(p) for p in paths])
    mean_len = v[:, 2].mean(axis=0)
    raw = v[0, 1] * mean_len
    expect = raw / raw.sum() * v[0, 0].sum()
    np.testing.assert_allclose(np.load(out / "counts.npy")[0], expect, rtol=1e-5)


def test_failed_build_leaves_no_matrix(tmp_path):
    paths = write_vectors(tmp_path, 3)
    np.save(paths[2], np.zeros((3, 5), dtype=np.float32))  # quantified against another reference
    samples = pd.DataFrame({"sample_id": ["a", "b", "c"]})
    with pytest.raises(ValueError, match="another reference"):
        build_matrix(samples, paths, GENES, tmp_path / "m", chunk=2, progress=False)
    assert not (tmp_path / "m").exists()
    assert not list(tmp_path.glob(".m.*"))


def test_parquet_gene_table_reads_sample_columns(shared_data):
    path = shared_data / "tcga_rnaseqv2_6cohorts" / "expression_rsem_normalized.genes_x_samples.parquet"
    m = open_matrix(path)
    assert m.shape == (317, 20531)
    rows = m.rows([3, 0])
    raw = pq.read_table(path, columns=[m.samples[3]]).column(0).to_numpy()
    np.testing.assert_allclose(rows[0], np.log1p(raw), rtol=1e-6)  # linear values -> log1p


def make_archs4(path, counts, genes, samples):
    with h5py.File(path, "w") as h5:
        h5.create_dataset("data/expression", data=counts, chunks=(len(genes), 1))
        h5.create_dataset("meta/genes/symbol", data=np.array(genes, dtype="S"))
        h5.create_dataset("meta/samples/geo_accession", data=np.array(samples, dtype="S"))


def test_bad_values_name_the_sample_in_every_reader(tmp_path):
    pd.DataFrame({"gene": ["A", "B"], "s1": [1.0, 2.0], "s2": [1.0, np.nan]}).to_parquet(
        tmp_path / "x.parquet")
    parquet = open_matrix(tmp_path / "x.parquet", transform="none")
    parquet.rows([0])  # a clean sample reads
    with pytest.raises(ValueError, match=r"x\.parquet: sample 's2' has 1 NaN/Inf"):
        parquet.rows([0, 1])
    make_archs4(tmp_path / "x.h5", np.array([[5, 3, 1], [2, 0, 4]], dtype=np.int64) - [0, 0, 9],
                ["A", "B"], ["GSM1", "GSM2", "GSM3"])
    with pytest.raises(ValueError, match=r"sample 'GSM3' has negative values"):
        open_matrix(tmp_path / "x.h5").rows([2, 0])


def test_archs4_import_keeps_protein_coding_and_computes_cpm(tmp_path):
    counts = np.array([[10, 0, 5], [30, 10, 5], [60, 90, 0]], dtype=np.uint32)  # genes x samples
    make_archs4(tmp_path / "a.h5", counts, ["A", "B", "C"], ["GSM1", "GSM2", "GSM3"])
    m = open_matrix(tmp_path / "a.h5")
    assert m.samples == ["GSM1", "GSM2", "GSM3"]
    np.testing.assert_allclose(m.rows([1])[0], np.log1p(counts[:, 1] / 100 * 1e6), rtol=1e-6)
    out = import_archs4(tmp_path / "a.h5", tmp_path / "m", gene_table=GENES, chunk=2, progress=False)
    store = MatrixStore(out)
    assert store.genes == ["ENSG1", "ENSG3"] and store.gene_names == ["A", "C"]
    np.testing.assert_allclose(np.load(out / "counts.npy")[:, 1], [60, 90, 0])
