"""`bulkfm matrix build` stacks the gene vectors its QC table names, wherever they are."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bulkfm.cli import main
from bulkfm.matrix.store import MatrixStore

GENES = pd.DataFrame({"gene_id": ["ENSG1", "ENSG2", "ENSG3"], "gene_name": ["A", "B", "C"],
                      "gene_type": ["protein_coding"] * 3})


def _setup(tmp_path, genes_paths):
    ref = tmp_path / "ref"
    ref.mkdir()
    GENES.to_parquet(ref / "genes.parquet")
    rng = np.random.default_rng(1)
    rows = []
    for i, p in enumerate(genes_paths):
        if p is not None:
            p.parent.mkdir(parents=True, exist_ok=True)
            np.save(p, np.stack([rng.integers(1, 50, 3), rng.uniform(1, 100, 3),
                                 rng.uniform(500, 900, 3)]).astype(np.float32))
        rows.append({"sample": f"S{i}", "run": "", "status": "pass", "reason": "",
                     "genes": "" if p is None else str(p)})
    rows.append({"sample": "BAD", "run": "", "status": "error", "reason": "x", "genes": ""})
    qc = tmp_path / "qc.tsv"
    pd.DataFrame(rows).to_csv(qc, sep="\t", index=False)
    return qc, ref


def test_build_reads_the_paths_the_qc_table_names(tmp_path):
    # Vectors outside quant's own layout: the matrix must not rebuild paths itself.
    paths = [tmp_path / "elsewhere" / "a.npy", tmp_path / "other" / "deep" / "b.npy"]
    qc, ref = _setup(tmp_path, paths)
    assert main(["matrix", "build", "--qc", str(qc), "--reference", str(ref),
                 "-o", str(tmp_path / "m")]) == 0
    store = MatrixStore(tmp_path / "m")
    assert store.samples == ["S0", "S1"]  # the failed sample is left out
    tpm = np.load(tmp_path / "m" / "tpm.npy")
    raw = np.load(paths[1])[1]
    np.testing.assert_allclose(tpm[1], raw / raw.sum() * 1e6, rtol=1e-5)
    assert "genes" not in pd.read_parquet(tmp_path / "m" / "samples.parquet").columns


def test_a_passing_row_without_a_path_names_the_sample(tmp_path, capsys):
    qc, ref = _setup(tmp_path, [tmp_path / "a.npy", None])
    assert main(["matrix", "build", "--qc", str(qc), "--reference", str(ref),
                 "-o", str(tmp_path / "m")]) != 0
    assert "S1" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_an_old_qc_table_without_paths_says_how_to_fix(tmp_path, capsys):
    qc, ref = _setup(tmp_path, [tmp_path / "a.npy"])
    pd.read_csv(qc, sep="\t").drop(columns=["genes"]).to_csv(qc, sep="\t", index=False)
    assert main(["matrix", "build", "--qc", str(qc), "--reference", str(ref),
                 "-o", str(tmp_path / "m")]) != 0
    assert "--forcerun quant_batch" in capsys.readouterr().err


def test_a_moved_results_directory_still_builds_from_its_own_vectors(tmp_path):
    # batch tables name vectors relative to themselves; `quant qc` rebases them onto qc.tsv
    run = tmp_path / "run"
    vec = run / "quant" / "samples" / "S0" / "genes.npy"
    qc_tsv, ref = _setup(tmp_path, [vec])
    batch = run / "quant" / "batches" / "b00000.tsv"
    batch.parent.mkdir(parents=True)
    table = pd.read_csv(qc_tsv, sep="\t")
    table["genes"] = ["../samples/S0/genes.npy", ""]
    table.to_csv(batch, sep="\t", index=False)
    assert main(["quant", "qc", str(batch), "--qc", str(run / "qc" / "qc.tsv"),
                 "--failed", str(run / "qc" / "failed.tsv")]) == 0
    assert pd.read_csv(run / "qc" / "qc.tsv", sep="\t")["genes"][0] == "../quant/samples/S0/genes.npy"
    moved = tmp_path / "moved"
    run.rename(moved)
    assert main(["matrix", "build", "--qc", str(moved / "qc" / "qc.tsv"), "--reference", str(ref),
                 "-o", str(moved / "matrix")]) == 0
    raw = np.load(moved / "quant" / "samples" / "S0" / "genes.npy")[1]
    np.testing.assert_allclose(np.load(moved / "matrix" / "tpm.npy")[0], raw / raw.sum() * 1e6,
                               rtol=1e-5)
