"""Baselines, metrics and probes on inputs whose answer is known."""

from __future__ import annotations

import numpy as np

from bulkfm.evaluate.baselines import knn_impute
from bulkfm.evaluate.metrics import PooledStats, pearson
from bulkfm.evaluate.probes import C_GRID, probe_cv, probe_repeated_cv, probe_split


def test_knn_recovers_a_sample_present_in_the_reference() -> None:
    rng = np.random.default_rng(0)
    ref = rng.random((20, 30)).astype(np.float32) * 5
    x = ref[[3, 7]].copy()
    mask = rng.random(x.shape) < 0.2
    pred = knn_impute(np.where(mask, -10, x), mask, ref, k=1)
    assert np.allclose(pred[mask], x[mask])
    # excluding itself, it must pick another row
    pred2 = knn_impute(x, mask, ref, k=1, exclude=np.array([3, 7]))
    assert not np.allclose(pred2[mask], x[mask])


def test_pooled_stats_equal_numpy_on_the_masked_values() -> None:
    rng = np.random.default_rng(1)
    t, p = rng.random((6, 40)), rng.random((6, 40))
    mask = rng.random((6, 40)) < 0.3
    s = PooledStats()
    s.add(t[:3], p[:3], mask[:3])
    s.add(t[3:], p[3:], mask[3:])
    r = s.result()
    assert np.isclose(r["pcc"], np.corrcoef(t[mask], p[mask])[0, 1])
    assert np.isclose(r["mse"], ((t - p)[mask] ** 2).mean())
    assert np.isclose(r["sample_pcc_mean"], np.mean([pearson(t[i][mask[i]], p[i][mask[i]])
                                                     for i in range(6)]))


def test_probes_read_separable_labels_and_fail_on_noise() -> None:
    rng = np.random.default_rng(2)
    labels = np.repeat(np.array(["a", "b", "c"]), 30)
    signal = rng.normal(size=(90, 10)) + np.repeat(np.eye(3, 10) * 5, 30, axis=0)
    train = np.arange(90) % 3 != 0
    assert probe_split(signal, labels, train, ~train)["accuracy"] == 1.0
    noise = rng.normal(size=(90, 10))
    groups = np.arange(90) // 3
    assert probe_cv(noise, labels, groups)["accuracy"] < 0.6


def test_probe_tunes_c_on_train_only_and_repeated_cv_compares_on_equal_folds() -> None:
    rng = np.random.default_rng(3)
    labels = np.repeat(np.array(["a", "b", "c"]), 20)
    groups = np.arange(60) // 2  # pairs of samples share a group
    signal = rng.normal(size=(60, 8)) + np.repeat(np.eye(3, 8) * 3.0, 20, axis=0)
    train = groups % 4 != 0
    r = probe_split(signal, labels, train, ~train, groups=groups)
    assert r["C"] in C_GRID and r["accuracy"] > 0.8
    # C and the fitted probe never see the scored samples: relabelling them changes nothing
    # but the score.
    shuffled = labels.copy()
    shuffled[~train] = rng.permutation(shuffled[~train])
    r2 = probe_split(signal, shuffled, train, ~train, groups=groups)
    assert r2["C"] == r["C"] and r2["accuracy"] < r["accuracy"]
    noise = rng.normal(size=(60, 8))
    rep = probe_repeated_cv({"pca": signal, "noise": noise}, labels, groups, repeats=1,
                            pca={"pca": 5})
    assert rep["pca"]["accuracy"] > 0.8 > 0.6 > rep["noise"]["accuracy"]
    assert rep["pca"]["n"] == 60 and rep["pca"]["repeats"] == 1
