"""What bulkfm train chooses from training + validation samples: the sample embedding's
blocks (grouped CV probe, default kept unless another is clearly better) and its saved map."""

from __future__ import annotations

import numpy as np
import pytest

from bulkfm.model.sample_embedding import SampleEmbedding, fit_embedding
from bulkfm.train.choose import (CV_REPEATS, EMBEDDING_CANDIDATES, SWITCH_MARGIN,
                                 _choose_weights)
from bulkfm.train.config import TrainConfig, from_dict


def _parts(rng, n: int, signal_in: str) -> tuple[dict, np.ndarray]:
    y = np.repeat(["a", "b"], n // 2)
    parts = {b: rng.normal(size=(n, d)) for b, d in (("pca", 20), ("ae", 8), ("pooled", 8))}
    parts[signal_in][:, 0] += np.where(y == "a", 4.0, -4.0)  # one block reads the label
    return parts, y


@pytest.mark.parametrize("signal_in, expected", [("pooled", {"pca": 1.0, "ae": 1.0,
                                                             "pooled": 1.0}),
                                                 ("ae", EMBEDDING_CANDIDATES[0])])
def test_blocks_chosen_by_grouped_cv_keep_the_default_unless_clearly_better(signal_in,
                                                                            expected) -> None:
    rng = np.random.default_rng(0)
    parts, y = _parts(rng, 80, signal_in)
    is_train = np.arange(80) % 5 != 0
    train_parts = {b: x[is_train] for b, x in parts.items()}
    weights, report = _choose_weights(list(EMBEDDING_CANDIDATES), parts, train_parts,
                                      (y.astype(object), np.arange(80).astype(object)), 0)
    assert weights == expected, report
    assert len(report["cv_accuracy"]) == len(EMBEDDING_CANDIDATES)
    # the score is the mean over several fold partitions, each on its own shuffled folds
    runs = np.array(report["cv_accuracy_per_partition"])
    assert runs.shape == (len(EMBEDDING_CANDIDATES), CV_REPEATS)
    assert np.allclose(runs.mean(1), report["cv_accuracy"], atol=1e-3)
    # no labels: the default, and the reason is recorded
    weights, report = _choose_weights(list(EMBEDDING_CANDIDATES), parts, train_parts,
                                      None, 0)
    assert weights == EMBEDDING_CANDIDATES[0] and "no labels" in report["how"]


def test_every_candidate_keeps_the_inputs() -> None:
    # the PCA of the raw values and the AE latent are in every candidate; only the pooled
    # hidden state is chosen in or out
    assert all(c["pca"] > 0 and c["ae"] > 0 for c in EMBEDDING_CANDIDATES)
    assert {c["pooled"] > 0 for c in EMBEDDING_CANDIDATES} == {True, False}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pooled_block_added_only_when_clearly_better(seed) -> None:
    # pooled hidden = wide noise: never added (a probe on the union would fit it); pooled =
    # the label: added
    rng = np.random.default_rng(seed)
    n = 60
    y = np.repeat(["a", "b"], n // 2)
    parts = {"pca": rng.normal(size=(n, 5)), "ae": rng.normal(size=(n, 8)),
             "pooled": rng.normal(size=(n, 60))}
    parts["pca"][:, 0] += np.where(y == "a", 1.2, -1.2)
    train_parts = {b: x[np.arange(n) % 5 != 0] for b, x in parts.items()}
    labelled = (y.astype(object), np.arange(n).astype(object))
    weights, report = _choose_weights(list(EMBEDDING_CANDIDATES), parts, train_parts, labelled,
                                      seed)
    assert weights == EMBEDDING_CANDIDATES[0], report
    chosen = report["cv_accuracy"][list(EMBEDDING_CANDIDATES).index(weights)]
    assert all(round((a - chosen) * n) < SWITCH_MARGIN for a in report["cv_accuracy"])
    parts["pooled"][:, 0] += np.where(y == "a", 6.0, -6.0)
    parts["pca"][:, 0] -= np.where(y == "a", 1.2, -1.2)  # the inputs no longer read it
    train_parts = {b: x[np.arange(n) % 5 != 0] for b, x in parts.items()}
    weights, _ = _choose_weights(list(EMBEDDING_CANDIDATES), parts, train_parts, labelled, seed)
    assert weights["pooled"] > 0


def test_embedding_definition_round_trips_and_standardises_on_train() -> None:
    rng = np.random.default_rng(1)
    parts, _ = _parts(rng, 40, "ae")
    parts["pca"] *= 100.0  # a wide-scale block does not dominate after standardising
    emb = fit_embedding(parts, {"pca": 1.0, "ae": 1.0, "pooled": 0.0})
    x = emb(parts)
    k = emb.dims["ae"]
    assert emb.dims["pca"] == 20 and 1 <= k <= 8 and x.shape == (40, 20 + k)
    assert np.allclose(x.mean(0), 0, atol=1e-5)
    # each used block has total variance 1, whatever its width or scale
    assert np.isclose(x[:, :20].var(0).sum(), 1.0, atol=1e-3)
    assert np.isclose(x[:, 20:].var(0).sum(), 1.0, atol=1e-3)
    back = SampleEmbedding.from_saved(emb.meta(), emb.arrays())
    assert np.allclose(back(parts), x, atol=1e-5)
    with pytest.raises(ValueError, match="block 'ae'"):
        emb({"pca": parts["pca"], "ae": None, "pooled": parts["pooled"]})
    # a definition saved before the reduction (no projection) still applies as it was made
    arrays = {k_: v for k_, v in emb.arrays().items() if "proj" not in k_}
    old = SampleEmbedding.from_saved(emb.meta(), arrays)
    assert old(parts).shape == (40, 28)


def test_learned_block_is_cut_to_its_effective_dimension() -> None:
    # a 64-wide latent that spans 3 directions (plus faint noise) gives ~3 columns, not 64:
    # a standardising probe would otherwise weigh 61 empty directions like real ones
    rng = np.random.default_rng(2)
    n = 200
    latent = rng.normal(size=(n, 3)) @ rng.normal(size=(3, 64)) + 0.01 * rng.normal(size=(n, 64))
    parts = {"pca": rng.normal(size=(n, 50)), "ae": latent, "pooled": None}
    emb = fit_embedding(parts, {"pca": 1.0, "ae": 1.0, "pooled": 0.0})
    assert emb.dims == {"pca": 50, "ae": 3}
    z = emb(parts)[:, 50:]
    # the kept axes hold the latent: regressing it on them leaves almost nothing
    centred = latent - latent.mean(0)
    coef, *_ = np.linalg.lstsq(z, centred, rcond=None)
    assert ((centred - z @ coef) ** 2).sum() / (centred ** 2).sum() < 1e-3
    # isotropic noise has no preferred axes: nearly all of its width is kept
    iso = fit_embedding({"ae": rng.normal(size=(2000, 16))}, {"ae": 1.0})
    assert iso.dims["ae"] >= 14


def test_ae_mask_choices_must_be_fractions() -> None:
    with pytest.raises(ValueError, match="ae_mask_choices"):
        from_dict({"ae_mask_choices": [0.15, 1.5]})
    assert from_dict({"ae_mask_choices": []}).ae_mask_choices == ()


def test_ae_regularisation_choices_are_checked_and_round_trip() -> None:
    default = TrainConfig()
    assert default.ae_regularisations() == [{}, {"dropout": 0.3}, {"weight_decay": 1.0}]
    assert from_dict(default.to_dict()) == default  # config.json -> the same config
    given = from_dict({"ae_regularisation_choices": [{}, {"dropout": 0.1, "weight_decay": 0.5}]})
    assert given.ae_regularisations() == [{}, {"dropout": 0.1, "weight_decay": 0.5}]
    assert from_dict({"ae_regularisation_choices": []}).ae_regularisation_choices == ()
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['dropot'\]"):
        from_dict({"ae_regularisation_choices": [{"dropot": 0.1}]})
    with pytest.raises(ValueError, match="dropout must be in"):
        from_dict({"ae_regularisation_choices": [{"dropout": 1.0}]})
    with pytest.raises(ValueError, match="weight_decay >= 0"):
        from_dict({"ae_regularisation_choices": [{"weight_decay": -1}]})
