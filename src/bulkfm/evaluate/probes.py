"""Linear probes: how well a logistic regression reads the label from an embedding.

Held-out protocol when the matrix holds the training split: fit on train-split samples,
score on test-split samples (split by group, so no study/participant is on both sides).
For a matrix the model never saw: grouped k-fold cross-validation over its labelled samples.
``probe_repeated_cv`` adds repeated grouped k-fold CV, so that a verdict does not rest on one
small test split.

Every feature set gets the same classifier protocol: StandardScaler + multinomial logistic
regression whose inverse regularisation C is chosen by grouped cross-validation *inside* the
training samples (never looking at the scored ones); PCA features (``pca=N``) are fitted,
without labels, on the training samples of each fit, like the model was. So PCA of raw values
and learned embeddings are tuned alike, and neither gets a regularisation that happens to suit
one representation.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import GroupKFold, StratifiedGroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

log = logging.getLogger(__name__)

C_GRID = (0.01, 0.1, 1.0, 10.0, 100.0)
INNER_FOLDS = 3


def _classifier(seed: int, c: float):
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, C=c,
                                                              random_state=seed))


def _group_folds(labels: np.ndarray, groups: np.ndarray, folds: int, seed: int
                 ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Grouped folds, stratified by label when every class can be (else plain grouped)."""
    folds = min(folds, len(np.unique(groups)))
    if folds < 2:
        return []
    _, counts = np.unique(labels, return_counts=True)
    if counts.min() >= folds:
        splitter = StratifiedGroupKFold(folds, shuffle=True, random_state=seed)
    else:
        try:  # scikit-learn >= 1.6 shuffles grouped folds; older ones repeat the same folds
            splitter = GroupKFold(n_splits=folds, shuffle=True, random_state=seed)
        except TypeError:
            splitter = GroupKFold(n_splits=folds)
    with warnings.catch_warnings():  # "least populated class" when a class spans few groups
        warnings.simplefilter("ignore", UserWarning)
        return list(splitter.split(np.zeros(len(labels)), labels, groups))


def _reduce(xtr: np.ndarray, xte: np.ndarray, pca: int | None,
            seed: int) -> tuple[np.ndarray, np.ndarray]:
    if not pca:
        return xtr, xte
    p = PCA(n_components=min(pca, xtr.shape[0] - 1, xtr.shape[1]), random_state=seed)
    return p.fit_transform(xtr), p.transform(xte)


def choose_c(features: np.ndarray, labels: np.ndarray, groups: np.ndarray,
             seed: int = 0) -> float:
    """C from ``C_GRID`` with the best inner grouped-CV accuracy (ties: the smaller C)."""
    folds = _group_folds(labels, groups, INNER_FOLDS, seed)
    if not folds:
        return 1.0
    correct = np.zeros(len(C_GRID))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for tr, te in folds:
            if len(np.unique(labels[tr])) < 2:
                continue
            for i, c in enumerate(C_GRID):
                correct[i] += (_classifier(seed, c).fit(features[tr], labels[tr])
                               .predict(features[te]) == labels[te]).sum()
    return float(C_GRID[int(np.argmax(correct))])


def _fit_predict(xtr: np.ndarray, ytr: np.ndarray, gtr: np.ndarray, xte: np.ndarray,
                 seed: int, pca: int | None) -> tuple[np.ndarray, float]:
    if len(np.unique(ytr)) < 2:  # a tiny fold with one class: the probe can only say that
        return np.full(len(xte), ytr[0], dtype=ytr.dtype), float("nan")
    # PCA is fitted once on the training samples (unsupervised, as the model was) and C is
    # chosen on the reduced features: one PCA per fit, whatever the number of genes.
    a, b = _reduce(xtr, xte, pca, seed)
    c = choose_c(a, ytr, gtr, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return _classifier(seed, c).fit(a, ytr).predict(b), c


def probe_split(features: np.ndarray, labels: np.ndarray, train: np.ndarray, test: np.ndarray,
                seed: int = 0, pca: int | None = None,
                groups: np.ndarray | None = None) -> dict[str, float]:
    """Fit on rows ``train``, score on ``test`` (bool masks); C by grouped CV within train."""
    groups = np.arange(len(labels)) if groups is None else groups
    pred, c = _fit_predict(features[train], labels[train], groups[train], features[test],
                           seed, pca)
    return {"accuracy": float(accuracy_score(labels[test], pred)),
            "macro_f1": float(f1_score(labels[test], pred, average="macro")),
            "n_train": int(train.sum()), "n_test": int(test.sum()), "C": c}


def probe_cv(features: np.ndarray, labels: np.ndarray, groups: np.ndarray, folds: int = 5,
             seed: int = 0, pca: int | None = None) -> dict[str, float]:
    """Grouped k-fold CV: every sample scored once by a probe that never saw its group."""
    splits = _group_folds(labels, groups, folds, seed)
    if not splits:
        raise ValueError("a cross-validated probe needs at least 2 groups of labelled samples")
    pred = np.empty(len(labels), dtype=labels.dtype)
    for tr, te in splits:
        pred[te], _ = _fit_predict(features[tr], labels[tr], groups[tr], features[te], seed, pca)
    return {"accuracy": float(accuracy_score(labels, pred)),
            "macro_f1": float(f1_score(labels, pred, average="macro")),
            "n_train": int(len(labels) * (len(splits) - 1) / len(splits)),
            "n_test": int(len(labels)), "folds": len(splits)}


def probe_repeated_cv(features: dict[str, np.ndarray], labels: np.ndarray, groups: np.ndarray,
                      repeats: int = 3, folds: int = 5, seed: int = 0,
                      pca: dict[str, int] | None = None) -> dict[str, dict[str, float]]:
    """Grouped k-fold CV repeated with reshuffled folds; every feature set on the same folds.

    Returns per feature set the mean and s.d. (over repeats) of accuracy, and mean macro-F1.
    """
    pca = pca or {}
    acc: dict[str, list[float]] = {k: [] for k in features}
    f1: dict[str, list[float]] = {k: [] for k in features}
    n_folds = 0
    for r in range(repeats):
        splits = _group_folds(labels, groups, folds, seed + r)
        if not splits:
            raise ValueError("repeated CV needs at least 2 groups of labelled samples")
        n_folds = len(splits)
        for name, X in features.items():
            pred = np.empty(len(labels), dtype=labels.dtype)
            for tr, te in splits:
                pred[te], _ = _fit_predict(X[tr], labels[tr], groups[tr], X[te], seed,
                                           pca.get(name))
            acc[name].append(float(accuracy_score(labels, pred)))
            f1[name].append(float(f1_score(labels, pred, average="macro")))
    return {name: {"accuracy": float(np.mean(acc[name])), "accuracy_sd": float(np.std(acc[name])),
                   "macro_f1": float(np.mean(f1[name])), "repeats": repeats,
                   "folds": n_folds, "n": int(len(labels))}
            for name in features}
