"""PCC graph against brute-force np.corrcoef on real TCGA expression."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from bulkfm.cli import main
from bulkfm.graph.io import load_graph
from bulkfm.graph.pcc import pcc_topk, train_indices
from bulkfm.matrix.store import open_matrix


def brute_force(x: np.ndarray, k: int, min_pcc: float, sign: str) -> dict[int, dict[int, float]]:
    """{gene: {neighbour: pcc}} straight from the definition."""
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.corrcoef(x.T.astype(np.float64))
    constant = x.std(axis=0) == 0
    out: dict[int, dict[int, float]] = {}
    for i in range(x.shape[1]):
        if constant[i]:
            out[i] = {}
            continue
        score = np.abs(c[i]) if sign == "abs" else c[i].copy()
        score[i] = -np.inf
        score[constant] = -np.inf
        top = np.argsort(-score, kind="stable")[:k]
        out[i] = {int(j): float(c[i, j]) for j in top if score[j] >= min_pcc}
    return out


def as_dict(result, n_genes: int) -> dict[int, dict[int, float]]:
    out: dict[int, dict[int, float]] = {i: {} for i in range(n_genes)}
    e = result.edges
    for s, t, p in zip(e.source, e.target, e.pcc, strict=True):
        out[int(s)][int(t)] = float(p)
    return out


@pytest.fixture()
def matrix_with_extras(tcga_log1p, tmp_path, store_writer, split_writer):
    """300 real genes + a constant gene, a gene constant only in the train split, and an
    near-mirror (PCC about -0.9) of a real gene; train = 4 of every 5 samples."""
    x, genes, samples = tcga_log1p
    n = x.shape[0]
    train = np.arange(n) % 5 != 0
    constant = np.full((n, 1), 3.5, dtype=np.float32)
    train_constant = np.where(train, 1.0, 2.0).astype(np.float32)[:, None]
    ref = int(np.argmax(x[train].var(axis=0)))  # a real, strongly varying gene
    # Not an exact -1 copy: |PCC| ties with ref's own neighbours would make top-k ambiguous.
    other = int(np.argsort(x[train].var(axis=0))[-2])
    mirror = (x[:, ref].max() - x[:, ref] + 0.3 * x[:, other])[:, None]
    x = np.hstack([x, constant, train_constant, mirror]).astype(np.float32)
    genes = [*genes, "CONST|0", "TRAINCONST|0", "MIRROR|0"]
    store = store_writer(tmp_path / "m", x, genes, samples)
    split = split_writer(tmp_path / "splits.tsv", samples, train)
    return store, split, x, genes, train, ref


@pytest.mark.parametrize("sign", ["positive", "abs"])
def test_topk_equals_brute_force_on_train_split(matrix_with_extras, sign):
    store, split, x, genes, train, ref = matrix_with_extras
    m = open_matrix(store)
    rows = train_indices(split, m.samples)
    assert np.array_equal(rows, np.nonzero(train)[0])
    got = pcc_topk(m, rows, top_k=20, min_pcc=0.4, sign=sign, chunk_genes=64,
                   batch_samples=50, progress=False)
    want = brute_force(x[train], 20, 0.4, sign)
    have = as_dict(got, len(genes))
    assert sum(len(v) for v in want.values()) > 2000  # real co-expression, not an empty graph
    for i in range(len(genes)):
        assert set(have[i]) == set(want[i]), genes[i]
        for j, p in want[i].items():
            assert have[i][j] == pytest.approx(p, abs=2e-5)
    assert not np.isnan(got.edges.pcc).any()
    assert (got.edges.source != got.edges.target).all()  # no self-loops
    n = len(genes)
    for isolated in (n - 3, n - 2):  # constant overall / constant within train
        assert not have[isolated]
        assert isolated not in set(got.edges.target.tolist())
    mirror = n - 1
    if sign == "abs":
        # The mirror is among its reference gene's neighbours, kept with its negative sign.
        assert have[ref][mirror] < -0.8
        assert (got.edges.pcc < 0).sum() > 0
    else:
        assert mirror not in have[ref]
        assert (got.edges.pcc >= 0.4).all()


def test_streamed_mode_equals_in_memory(matrix_with_extras):
    store, split, *_ = matrix_with_extras
    m = open_matrix(store)
    rows = train_indices(split, m.samples)
    a = pcc_topk(m, rows, progress=False)
    b = pcc_topk(m, rows, max_memory_gb=0.0005, batch_samples=40, progress=False)
    assert (a.mode, b.mode) == ("in-memory", "streamed")
    assert b.passes > 2  # several gene chunks, each a fresh read of the train rows
    assert np.array_equal(a.edges.source, b.edges.source)
    assert np.array_equal(a.edges.target, b.edges.target)
    np.testing.assert_allclose(a.edges.pcc, b.edges.pcc, atol=2e-5)


def test_cli_build_writes_edges_summary_plot(matrix_with_extras, tmp_path):
    store, split, x, genes, train, _ = matrix_with_extras
    out = tmp_path / "graph" / "edges.parquet"
    rc = main(["graph", "build", "--matrix", str(store), "--split", str(split), "-o", str(out),
               "--top-k", "10", "--min-pcc", "0.5", "--sign", "abs", "--threads", "2"])
    assert rc == 0
    edges = pd.read_parquet(out)
    assert list(edges.columns) == ["source", "target", "pcc"]
    assert str(edges["pcc"].dtype) == "float32"
    assert edges.groupby("source").size().max() <= 10
    assert (edges["pcc"].abs() >= 0.5).all()
    summary = json.loads(out.with_suffix(".summary.json").read_text())
    assert summary["n_edges"] == len(edges)
    assert summary["n_train_samples"] == int(train.sum())
    assert summary["n_constant_genes"] == int((x[train].std(axis=0) == 0).sum()) >= 2
    assert summary["n_negative_edges"] == int((edges["pcc"] < 0).sum()) > 0
    png = out.with_suffix(".degree.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    edge_index, weight = load_graph(out, genes)
    assert edge_index.shape == (2, len(edges))
    assert genes[int(edge_index[0, 0])] == edges["source"].iloc[0]
    assert genes[int(edge_index[1, -1])] == edges["target"].iloc[-1]
    np.testing.assert_array_equal(weight.numpy(), edges["pcc"].to_numpy())


def test_split_errors(tcga_log1p, tmp_path):
    _, _, samples = tcga_log1p
    bad = tmp_path / "unknown.tsv"
    pd.DataFrame({"sample_id": [samples[0], "TCGA-NOT-A-SAMPLE"], "split": ["train", "train"]}
                 ).to_csv(bad, sep="\t", index=False)
    with pytest.raises(ValueError, match="TCGA-NOT-A-SAMPLE.*not in the matrix|not in the matrix"):
        train_indices(bad, samples)
    no_train = tmp_path / "no_train.tsv"
    pd.DataFrame({"sample_id": samples[:5], "split": ["val"] * 2 + ["test"] * 3}
                 ).to_csv(no_train, sep="\t", index=False)
    with pytest.raises(ValueError, match="0 train sample"):
        train_indices(no_train, samples)
    wrong = tmp_path / "wrong.tsv"
    pd.DataFrame({"sample_id": samples[:3], "split": ["train", "training", "test"]}
                 ).to_csv(wrong, sep="\t", index=False)
    with pytest.raises(ValueError, match="training"):
        train_indices(wrong, samples)
    assert len(train_indices(None, samples)) == len(samples)


def test_cli_rejects_nan_and_negative_values(tcga_log1p, tmp_path, store_writer, capsys):
    x, genes, samples = tcga_log1p
    for name, value in (("nan", np.nan), ("neg", -1.0)):
        bad = x[:40].copy()
        bad[7, 3] = value
        store = store_writer(tmp_path / name, bad, genes, samples[:40])
        rc = main(["graph", "build", "--matrix", str(store), "-o", str(tmp_path / "e.parquet")])
        assert rc == 2
        err = capsys.readouterr().err
        assert samples[7] in err
        assert ("NaN" in err) if name == "nan" else ("negative" in err)
    assert not (tmp_path / "e.parquet").exists()
