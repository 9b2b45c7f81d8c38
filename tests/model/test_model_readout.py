"""Readout: the convex blend fit (pure functions on synthetic truth), files, kNN exclusion."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bulkfm.model.readout import Readout, ReadoutError, fit_blend, load_readout, simplex_grid


def _entries(weights: np.ndarray, n_samples: int = 60, n_genes: int = 40, seed: int = 0):
    """Masked entries whose truth is a known blend of three noisy predictors + noise."""
    rng = np.random.default_rng(seed)
    sample = np.repeat(np.arange(n_samples), n_genes)
    gene = np.tile(np.arange(n_genes), n_samples)
    y = rng.normal(5, 2, size=len(gene))
    preds = y[:, None] + rng.normal(0, 1.0, size=(len(y), 3))  # independent errors
    w = weights[gene] if weights.ndim == 2 else np.broadcast_to(weights, (len(gene), 3))
    # truth = the blend of the predictors (+ small noise): the best weights are ``weights``
    y = (preds * w).sum(1) + rng.normal(0, 0.1, size=len(y))
    return gene, sample, y, preds


def test_grid_is_the_simplex() -> None:
    g = simplex_grid(3)
    assert np.allclose(g.sum(1), 1) and (g >= 0).all() and len(g) == 231


def test_global_weights_are_recovered_and_never_worse_than_a_part() -> None:
    true = np.array([0.6, 0.1, 0.3])
    gene, sample, y, preds = _entries(true)
    w, mode, cv = fit_blend(gene, sample, y, preds, 40)
    assert mode == "global" and set(cv) == {"global", "per_gene"}
    assert np.allclose(w.sum(1), 1) and (w >= 0).all()
    assert np.abs(w[0] - true).max() <= 0.1
    blended = (preds * w[gene]).sum(1)
    for j in range(3):  # a vertex of the simplex is one part alone
        assert np.mean((blended - y) ** 2) <= np.mean((preds[:, j] - y) ** 2)


def test_per_gene_weights_win_when_genes_differ() -> None:
    true = np.zeros((40, 3))
    true[:20, 0] = 1.0  # half the genes follow part 0, half part 2
    true[20:, 2] = 1.0
    gene, sample, y, preds = _entries(true, n_samples=80)
    w, mode, cv = fit_blend(gene, sample, y, preds, 40)
    assert mode == "per_gene" and cv["per_gene"] < cv["global"]
    # shrunk towards the global blend (a prior worth one gene's entries), yet each gene leans
    # to the part that predicts it
    assert (w[:20, 0] >= 0.65).all() and (w[20:, 2] >= 0.65).all()


def test_readout_files_roundtrip_and_refuse_other_models(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    ref = rng.random((6, 5)).astype(np.float32)
    r = Readout(parts=["trunk", "knn"], weights=np.tile([0.25, 0.75], (5, 1)), reference=ref,
                knn_k=1, mode="global", pca_mean=ref.mean(0), pca_components=np.eye(2, 5),
                reference_samples=[f"s{i}" for i in range(6)])
    r.save(tmp_path / "readout")
    back = load_readout(tmp_path)
    assert back is not None and back.parts == r.parts and np.allclose(back.weights, r.weights)
    assert back.exclude_for(["s3", "x"]).tolist() == [3, -1]
    x = ref[:2].copy()
    x[0, 1] = -10.0  # an absent gene reads as the training mean in the PCA
    pca = back.pca(x, -10.0)
    assert pca.shape == (2, 2) and pca[0, 1] == pytest.approx(0.0, abs=1e-6)
    combined = back.combine({"trunk": np.zeros((2, 5)), "knn": np.ones((2, 5))})
    assert np.allclose(combined, 0.75)
    with pytest.raises(ReadoutError, match="another model"):
        load_readout(tmp_path, n_genes=7)
    (tmp_path / "readout" / "readout.npz").unlink()
    with pytest.raises(ReadoutError, match="incomplete"):
        load_readout(tmp_path)
