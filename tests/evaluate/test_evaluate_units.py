"""Baselines, metrics and probes on inputs whose answer is known."""

from __future__ import annotations

import numpy as np

from bulkfm.evaluate.baselines import knn_impute
from bulkfm.evaluate.metrics import PooledStats, pearson
from bulkfm.evaluate.probes import probe_cv, probe_split


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
