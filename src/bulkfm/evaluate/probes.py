"""Linear probes: how well a logistic regression reads the label from an embedding.

Held-out protocol when the matrix holds the training split: fit on train-split samples,
score on test-split samples (split by group, so no study/participant is on both sides).
For a matrix the model never saw: grouped k-fold cross-validation over its labelled samples.
"""

from __future__ import annotations

import logging

import numpy as np
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

log = logging.getLogger(__name__)


def _classifier(seed: int):
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, C=1.0,
                                                              random_state=seed))


def probe_split(features: np.ndarray, labels: np.ndarray, train: np.ndarray, test: np.ndarray,
                seed: int = 0, pca: int | None = None) -> dict[str, float]:
    """Fit on rows ``train``, score on ``test`` (bool masks). ``pca``: reduce first (fit on train)."""
    xtr, xte = features[train], features[test]
    if pca:
        p = PCA(n_components=min(pca, xtr.shape[0] - 1, xtr.shape[1]), random_state=seed)
        xtr, xte = p.fit_transform(xtr), p.transform(xte)
    clf = _classifier(seed).fit(xtr, labels[train])
    pred = clf.predict(xte)
    return {"accuracy": float(accuracy_score(labels[test], pred)),
            "macro_f1": float(f1_score(labels[test], pred, average="macro")),
            "n_train": int(train.sum()), "n_test": int(test.sum())}


def probe_cv(features: np.ndarray, labels: np.ndarray, groups: np.ndarray, folds: int = 5,
             seed: int = 0, pca: int | None = None) -> dict[str, float]:
    n_groups = len(np.unique(groups))
    folds = min(folds, n_groups)
    if folds < 2:
        raise ValueError("a cross-validated probe needs at least 2 groups of labelled samples")
    pred = np.empty(len(labels), dtype=labels.dtype)
    for tr, te in GroupKFold(n_splits=folds).split(features, labels, groups):
        train = np.zeros(len(labels), bool)
        train[tr] = True
        xtr, xte = features[tr], features[te]
        if pca:
            p = PCA(n_components=min(pca, len(tr) - 1, features.shape[1]), random_state=seed)
            xtr, xte = p.fit_transform(xtr), p.transform(xte)
        pred[te] = _classifier(seed).fit(xtr, labels[tr]).predict(xte)
    return {"accuracy": float(accuracy_score(labels, pred)),
            "macro_f1": float(f1_score(labels, pred, average="macro")),
            "n_train": int(len(labels) * (folds - 1) / folds), "n_test": int(len(labels)),
            "folds": folds}
