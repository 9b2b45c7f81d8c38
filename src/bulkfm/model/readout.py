"""Readout: what a trained model answers, fitted on the validation split after training.

Masked-gene prediction. The model holds two kinds of evidence about a masked gene: the sample's
context (the AE reconstruction, corrected by the graph transformer: the *trunk*) and the
observed genes of similar samples (*kNN* over training samples, distances on the sample's
observed genes). Which one is better depends on the matrix: on a few hundred samples of
well-separated cohorts the trunk wins, on a homogeneous study with many near-duplicate
samples kNN wins (the issue-13 matrix: kNN 0.836 vs model 0.831). So the prediction is a
convex blend

    pred[b, g] = w[g, 0] * trunk[b, g] + w[g, 1] * AE[b, g] + w[g, 2] * kNN[b, g]
    w[g, :] >= 0,  sum_p w[g, p] = 1

with weights fitted by least squares on masked genes of the *validation* samples (never the
test split), on a grid over the simplex (step 1/20). A convex blend contains each part (a
vertex of the simplex), so on the validation samples it is never worse than any part; across
held-out samples it keeps that property as long as validation resembles them, which is what
the split by group is for. Weights are either one global triple or per gene, shrunk to the
global one (a prior worth one average gene's entries); which of the two is chosen by 2-fold
cross-validation over the validation samples, and logged.

Sample embedding. The PCA of raw log1p is fitted on training samples (the kNN reference) and
saved here, with the sample embedding's definition (bulkfm.model.sample_embedding: blocks
[PCA | AE latent | pooled hidden], their training-split statistics and weights).

Saved in ``DIR/readout/`` (``readout.npz`` arrays + ``readout.json`` settings and the fit
report), written atomically. Ablation: docs/model.md.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bulkfm.common.atomic import atomic_path
from bulkfm.model.sample_embedding import SampleEmbedding

log = logging.getLogger(__name__)

GRID_STEPS = 20  # simplex grid resolution: weights in multiples of 1/20
VAL_REPEATS = 4  # mask draws per validation sample for the fit
MAX_VAL_SAMPLES = 500  # bounded fit cost whatever the validation split's size


class ReadoutError(ValueError):
    """A readout directory is incomplete or does not fit the model."""


def knn_impute(x: np.ndarray, mask: np.ndarray, reference: np.ndarray, k: int = 10,
               exclude: np.ndarray | None = None) -> np.ndarray:
    """x [B, G] (values under mask ignored), mask bool [B, G], reference [R, G] -> [B, G].

    For each sample, distances to the reference use only its *observed* genes; a masked gene is
    the mean over the k nearest references. ``exclude[b]`` = index of a reference row to skip
    for sample b (itself), or -1.
    """
    xt = torch.from_numpy(np.where(mask, 0.0, x).astype(np.float32))
    w = torch.from_numpy((~mask).astype(np.float32))  # observed
    ref = torch.from_numpy(reference.astype(np.float32))
    # Σ_obs (x - r)² = Σ w x² - 2 (w x)·r + w·r²   -> [B, R]
    d = (w * xt * xt).sum(1, keepdim=True) - 2 * xt @ ref.T + w @ (ref * ref).T
    if exclude is not None:
        rows = torch.arange(len(x))
        ok = torch.from_numpy(exclude >= 0)
        d[rows[ok], torch.from_numpy(exclude)[ok]] = float("inf")
    kk = min(k, ref.shape[0] - (1 if exclude is not None and (exclude >= 0).any() else 0))
    idx = d.topk(max(1, kk), dim=1, largest=False).indices  # [B, k]
    return ref[idx].mean(1).numpy()  # [B, G]


def simplex_grid(parts: int, steps: int = GRID_STEPS) -> np.ndarray:
    """[P, parts] every weight vector with entries in multiples of 1/steps summing to 1."""
    pts = [c for c in itertools.product(range(steps + 1), repeat=parts) if sum(c) == steps]
    return np.asarray(pts, dtype=np.float64) / steps


@dataclass
class Readout:
    parts: list[str]  # subset of ("trunk", "ae", "knn"), the columns of ``weights``
    weights: np.ndarray  # [G, P] convex weights per gene (global mode: the same row everywhere)
    reference: np.ndarray  # [R, G] float32 log1p training samples (kNN reference)
    knn_k: int
    mode: str  # "global" | "per_gene" | "trunk_only"
    pca_mean: np.ndarray | None = None  # [G]
    pca_components: np.ndarray | None = None  # [N, G]
    report: dict[str, Any] = field(default_factory=dict)
    reference_samples: list[str] = field(default_factory=list)  # sample ids of ``reference``
    embedding: SampleEmbedding | None = None  # the sample embedding's definition

    def embedding_report(self) -> dict[str, Any] | None:
        """Blocks, weights and how they were chosen (None: a readout from before it)."""
        if self.embedding is None:
            return None
        return {"blocks": self.embedding.blocks, "weights": self.embedding.weights,
                "dims": self.embedding.dims, **self.embedding.report}

    def exclude_for(self, samples: list[str]) -> np.ndarray:
        """Reference row of each sample (itself: kNN must not find it), or -1."""
        pos = {s: i for i, s in enumerate(self.reference_samples)}
        return np.array([pos.get(s, -1) for s in samples], dtype=np.int64)

    # ----------------------------------------------------------------- prediction
    @torch.no_grad()
    def part_predictions(self, model: torch.nn.Module, x_in: torch.Tensor,
                         exclude: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """x_in [B, G] log1p with masked/absent genes = mask value -> {part: [B, G]}."""
        mask_value = model.config.mask_value
        out: dict[str, np.ndarray] = {}
        if "trunk" in self.parts:
            out["trunk"] = model(x_in).float().cpu().numpy()
        if "ae" in self.parts:
            out["ae"] = model.ae(x_in)[0].float().cpu().numpy()
        if "knn" in self.parts:
            x = x_in.float().cpu().numpy()
            out["knn"] = knn_impute(x, x == mask_value, self.reference, self.knn_k, exclude)
        return out

    def combine(self, parts: dict[str, np.ndarray]) -> np.ndarray:
        """{part: [B, G]} -> blended [B, G]."""
        stack = np.stack([parts[p] for p in self.parts], axis=-1)  # [B, G, P]
        return np.einsum("bgp,gp->bg", stack, self.weights).astype(np.float32)

    def predict(self, model: torch.nn.Module, x_in: torch.Tensor,
                exclude: np.ndarray | None = None) -> np.ndarray:
        """Masked-gene prediction of the blend: x_in [B, G] -> log1p [B, G]."""
        return self.combine(self.part_predictions(model, x_in, exclude))

    # ----------------------------------------------------------------- embedding
    def pca(self, x: np.ndarray, mask_value: float) -> np.ndarray | None:
        """Unmasked x [B, G] log1p (absent genes = mask value, read as the train mean) ->
        [B, N] PCA coordinates, or None when the readout has no PCA."""
        if self.pca_components is None or self.pca_mean is None:
            return None
        centred = np.where(x == mask_value, 0.0, x - self.pca_mean)
        return (centred @ self.pca_components.T).astype(np.float32)

    # ----------------------------------------------------------------- files
    def save(self, path: str | os.PathLike[str]) -> Path:
        path = Path(path)
        arrays = {"weights": self.weights.astype(np.float32),
                  "reference": self.reference.astype(np.float32)}
        if self.pca_components is not None:
            arrays["pca_mean"] = self.pca_mean.astype(np.float32)
            arrays["pca_components"] = self.pca_components.astype(np.float32)
        if self.embedding is not None:
            arrays.update(self.embedding.arrays())
        meta = {"parts": self.parts, "knn_k": self.knn_k, "mode": self.mode,
                "report": self.report, "reference_samples": self.reference_samples,
                "embedding": self.embedding.meta() if self.embedding is not None else None}
        with atomic_path(path) as tmp:
            tmp.mkdir()
            np.savez(tmp / "readout.npz", **arrays)
            (tmp / "readout.json").write_text(json.dumps(meta, indent=2) + "\n")
        return path


def load_readout(path: str | os.PathLike[str], n_genes: int | None = None) -> Readout | None:
    """``DIR/readout`` (or DIR itself) -> Readout; None when there is none."""
    path = Path(path)
    if (path / "readout").is_dir():
        path = path / "readout"
    if not (path / "readout.json").is_file():
        return None
    if not (path / "readout.npz").is_file():
        raise ReadoutError(f"{path}: readout.json without readout.npz (incomplete readout); "
                           "delete the folder and rerun bulkfm train to refit it")
    meta = json.loads((path / "readout.json").read_text())
    with np.load(path / "readout.npz") as z:
        arrays = {k: z[k] for k in z.files}
    r = Readout(parts=list(meta["parts"]), weights=arrays["weights"].astype(np.float64),
                reference=arrays["reference"], knn_k=int(meta["knn_k"]), mode=meta["mode"],
                pca_mean=arrays.get("pca_mean"), pca_components=arrays.get("pca_components"),
                report=meta.get("report", {}),
                reference_samples=list(meta.get("reference_samples", [])),
                embedding=SampleEmbedding.from_saved(meta.get("embedding"), arrays))
    if n_genes is not None and r.weights.shape[0] != n_genes:
        raise ReadoutError(f"{path}: readout for {r.weights.shape[0]} genes, model has "
                           f"{n_genes}; it belongs to another model")
    return r


# --------------------------------------------------------------------------- fitting
def _moments(gene: np.ndarray, y: np.ndarray, preds: np.ndarray, n_genes: int
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-gene sufficient statistics of SSE(w) = w A w - 2 w b + c over masked entries.

    gene [N], y [N], preds [N, P] -> A [G, P, P], b [G, P], c [G], n [G]."""
    p = preds.shape[1]
    a = np.zeros((n_genes, p, p))
    for i in range(p):
        for j in range(i, p):
            a[:, i, j] = a[:, j, i] = np.bincount(gene, preds[:, i] * preds[:, j], n_genes)
    b = np.stack([np.bincount(gene, preds[:, i] * y, n_genes) for i in range(p)], axis=1)
    c = np.bincount(gene, y * y, n_genes)
    n = np.bincount(gene, minlength=n_genes).astype(np.float64)
    return a, b, c, n


def _sse(grid: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """[K, P] grid, per-gene moments -> SSE [K, G]."""
    quad = np.einsum("kp,gpq,kq->kg", grid, a, grid)
    return quad - 2 * grid @ b.T + c[None, :]


def _fit_weights(grid: np.ndarray, a, b, c, n, mode: str) -> np.ndarray:
    """[G, P] weights minimising SSE on these moments (global or shrunk per gene)."""
    sse = _sse(grid, a, b, c)  # [K, G]
    total = sse.sum(1)  # [K]
    best_global = grid[int(np.argmin(total))]
    if mode == "global":
        return np.broadcast_to(best_global, (a.shape[0], grid.shape[1])).copy()
    # per gene, with the global objective as a prior worth one average gene's entries
    prior = total / max(1.0, n.sum()) * max(1.0, n.mean())  # [K]
    return grid[np.argmin(sse + prior[:, None], axis=0)]  # [G, P]


def _score(weights: np.ndarray, a, b, c) -> float:
    quad = np.einsum("gp,gpq,gq->g", weights, a, weights)
    return float((quad - 2 * (weights * b).sum(1) + c).sum())


def fit_blend(gene: np.ndarray, sample: np.ndarray, y: np.ndarray, preds: np.ndarray,
              n_genes: int, seed: int = 0) -> tuple[np.ndarray, str, dict[str, float]]:
    """Masked validation entries -> (weights [G, P], mode, cross-validated SSE per mode).

    gene, sample [N] int, y [N], preds [N, P]. The mode (one global weight vector, or per gene
    shrunk to it) is the one with the lower SSE in 2-fold cross-validation over samples.
    """
    grid = simplex_grid(preds.shape[1])
    rng = np.random.default_rng(seed)
    ids = np.unique(sample)
    half = set(rng.permutation(ids)[: len(ids) // 2].tolist())
    fold = np.array([s in half for s in sample])
    cv: dict[str, float] = {}
    for mode in ("global", "per_gene"):
        if len(ids) < 2:
            break
        total = 0.0
        for tr in (fold, ~fold):
            w = _fit_weights(grid, *_moments(gene[tr], y[tr], preds[tr], n_genes), mode)
            total += _score(w, *_moments(gene[~tr], y[~tr], preds[~tr], n_genes)[:3])
        cv[mode] = total
    mode = min(cv, key=cv.get) if cv else "global"
    weights = _fit_weights(grid, *_moments(gene, y, preds, n_genes), mode)
    return weights, mode, cv


def _base_readout(model: torch.nn.Module, data, train_rows: np.ndarray, knn_k: int,
                  max_reference: int, embed_pca: int, rng: np.random.Generator,
                  seed: int) -> Readout:
    """The trunk-only readout: kNN reference and PCA from (up to ``max_reference``) training
    samples."""
    ref_rows = np.sort(rng.choice(train_rows, max_reference, replace=False)) \
        if len(train_rows) > max_reference else np.asarray(train_rows)
    reference = data.rows(ref_rows).astype(np.float32)  # [R, G]
    n_genes = reference.shape[1]
    pca_mean = pca_components = None
    n_pca = min(embed_pca, len(ref_rows) - 1, n_genes)
    if n_pca > 0:
        from sklearn.decomposition import PCA

        p = PCA(n_components=n_pca, random_state=seed).fit(reference)
        pca_mean, pca_components = p.mean_, p.components_
    parts = ["trunk"] + (["ae"] if getattr(model, "ae", None) is not None else []) + ["knn"]
    trunk_only = np.zeros((n_genes, len(parts)))
    trunk_only[:, 0] = 1.0
    return Readout(parts=parts, weights=trunk_only, reference=reference, knn_k=knn_k,
                   mode="trunk_only", pca_mean=pca_mean, pca_components=pca_components,
                   report={"n_reference": int(len(ref_rows)),
                           "pca_components": int(max(0, n_pca))},
                   reference_samples=[str(data.samples[i]) for i in ref_rows])


@torch.no_grad()
def _validation_entries(readout: Readout, model: torch.nn.Module, data, val_rows: np.ndarray,
                        mask_fraction: float, seed: int, batch_size: int, device
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Masked entries of the validation samples (``VAL_REPEATS`` mask draws) ->
    (gene [N], sample [N], truth [N], part predictions [N, P])."""
    from bulkfm.train.data import apply_mask, random_mask, step_generator

    mask_value = model.config.mask_value
    genes_l, samples_l, y_l, preds_l = [], [], [], []
    model.eval()
    for r in range(VAL_REPEATS):
        for i, start in enumerate(range(0, len(val_rows), batch_size)):
            idx = val_rows[start : start + batch_size]
            x = data.rows(idx).astype(np.float32)
            mask = random_mask(x.shape, mask_fraction, step_generator(seed, 55, r, i)).numpy()
            mask &= x != mask_value  # genes the matrix lacks are never fitted on
            x_in = apply_mask(torch.from_numpy(x), torch.from_numpy(mask), mask_value)
            pp = readout.part_predictions(model, x_in.to(device))
            b, g = np.nonzero(mask)
            genes_l.append(g)
            samples_l.append(idx[b])
            y_l.append(x[b, g].astype(np.float64))
            preds_l.append(np.stack([pp[p][b, g] for p in readout.parts],
                                    axis=1).astype(np.float64))
    return (np.concatenate(genes_l), np.concatenate(samples_l), np.concatenate(y_l),
            np.concatenate(preds_l))


def fit_readout(model: torch.nn.Module, data, train_rows: np.ndarray, val_rows: np.ndarray, *,
                mask_fraction: float, knn_k: int = 10, max_reference: int = 2000,
                embed_pca: int = 50, blend: bool = True, seed: int = 0,
                batch_size: int = 8, device: torch.device | str = "cpu") -> Readout:
    """Fit the readout of a trained BulkFormer: kNN reference and PCA from (up to
    ``max_reference``) training samples, blend weights from the validation samples' masked
    genes. ``data`` reads rows in the model's gene order (``SubsetMatrix``)."""
    rng = np.random.default_rng(seed)
    readout = _base_readout(model, data, train_rows, knn_k, max_reference, embed_pca, rng, seed)
    if not blend:
        log.info("readout: blend off (blend: false): the trunk's prediction is the model's")
        return readout
    if len(val_rows) == 0:
        log.warning("readout: no validation samples (val_fraction 0): the blend cannot be "
                    "fitted without looking at training samples; the trunk's prediction is "
                    "used alone")
        return readout
    val_rows = np.asarray(val_rows)
    if len(val_rows) > MAX_VAL_SAMPLES:
        val_rows = np.sort(rng.choice(val_rows, MAX_VAL_SAMPLES, replace=False))
    gene, sample, y, preds = _validation_entries(readout, model, data, val_rows, mask_fraction,
                                                 seed, batch_size, device)
    parts = readout.parts
    weights, mode, cv = fit_blend(gene, sample, y, preds, readout.weights.shape[0], seed)
    mse = {p: float(np.mean((preds[:, j] - y) ** 2)) for j, p in enumerate(parts)}
    mse["blend"] = float(np.mean((np.einsum("np,np->n", preds, weights[gene]) - y) ** 2))
    readout.weights, readout.mode = weights, mode
    readout.report.update({
        "n_val_samples": int(len(val_rows)), "n_val_entries": int(len(y)),
        "val_mse": mse, "cv_sse": cv, "mean_weights": dict(zip(parts, weights.mean(0).round(4)
                                                                .tolist(), strict=True))})
    log.info("readout: chose a %s blend of %s from %d validation samples (2-fold CV SSE %s); "
             "mean weights %s; validation masked MSE %s", mode, "+".join(parts), len(val_rows),
             {k: round(v, 1) for k, v in cv.items()}, readout.report["mean_weights"],
             {k: round(v, 4) for k, v in mse.items()})
    return readout
