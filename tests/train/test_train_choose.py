"""What bulkfm train chooses from training + validation samples: the sample embedding's
blocks (grouped CV probe, default kept unless another is clearly better) and its saved map."""

from __future__ import annotations

import numpy as np
import pytest

from bulkfm.model.sample_embedding import SampleEmbedding
from bulkfm.model.sample_embedding import standardiser
from bulkfm.train.choose import EMBEDDING_CANDIDATES, _choose_weights
from bulkfm.train.config import from_dict


def _parts(rng, n: int, signal_in: str) -> tuple[dict, np.ndarray]:
    y = np.repeat(["a", "b"], n // 2)
    parts = {b: rng.normal(size=(n, d)) for b, d in (("pca", 20), ("ae", 8), ("pooled", 8))}
    parts[signal_in][:, 0] += np.where(y == "a", 4.0, -4.0)  # one block reads the label
    return parts, y


@pytest.mark.parametrize("signal_in, expected", [("pooled", {"pca": 1.0, "ae": 0.0,
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
    # no labels: the default, and the reason is recorded
    weights, report = _choose_weights(list(EMBEDDING_CANDIDATES), parts, train_parts,
                                      None, 0)
    assert weights == EMBEDDING_CANDIDATES[0] and "no labels" in report["how"]


def test_embedding_definition_round_trips_and_standardises_on_train() -> None:
    rng = np.random.default_rng(1)
    parts, _ = _parts(rng, 40, "ae")
    parts["pca"] *= 100.0  # a wide-scale block does not dominate after standardising
    emb = standardiser(parts, {"pca": 1.0, "ae": 1.0, "pooled": 0.0})
    x = emb(parts)
    assert x.shape == (40, 28) and np.allclose(x.mean(0), 0, atol=1e-5)
    # each used block has total variance 1 (1/sqrt(dim)), whatever its width or scale
    assert np.isclose(x[:, :20].var(0).sum(), 1.0, atol=1e-3)
    assert np.isclose(x[:, 20:].var(0).sum(), 1.0, atol=1e-3)
    back = SampleEmbedding.from_saved(emb.meta(), emb.arrays())
    assert np.allclose(back(parts), x, atol=1e-5)
    with pytest.raises(ValueError, match="block 'ae'"):
        emb({"pca": parts["pca"], "ae": None, "pooled": parts["pooled"]})


def test_ae_mask_choices_must_be_fractions() -> None:
    with pytest.raises(ValueError, match="ae_mask_choices"):
        from_dict({"ae_mask_choices": [0.15, 1.5]})
    assert from_dict({"ae_mask_choices": []}).ae_mask_choices == ()
