"""``bulkfm evaluate``: masked-gene reconstruction vs baselines, linear probes, t-SNE.

Reads the train output directory (model/, ae/, splits.tsv, gene_stats.parquet) and any matrix.
If the matrix holds the run's samples, held-out = its test split (val if test is empty) and
probes are fit on the train split; otherwise every sample is held out and probes are
cross-validated by group. Writes into OUT:

    metrics.json         everything below, also printed as the last stdout line
    reconstruction.tsv   method, pcc, sample_pcc_mean, mse, n_masked, n_samples
    sample_pcc.tsv       sample_id, then per method the sample's masked-gene PCC (paired tests)

Methods: ``model`` (the model's answer: the readout's convex blend of trunk, AE and kNN fitted
on the validation split, bulkfm.model.readout; the trunk alone when there is no readout),
``trunk`` (the graph transformer's own prediction), ``ae`` (stage 1 alone), ``knn``,
``gene_mean``, for a run started with ``--init`` also ``zero_shot`` (the pretrained model
with its own readout, not fine-tuned), and ``compare:NAME`` for each ``compare`` directory
(another run on the same genes, e.g. from scratch: its own readout, same samples and masks). ``paired`` holds per-sample comparisons of ``model``
with each other method: share of held-out samples it beats and a two-sided Wilcoxon
signed-rank p on the per-sample masked-gene PCC.
    probe.tsv            features, protocol (held-out | repeated grouped CV), accuracy, ...
    reconstruction.png   predicted vs true masked values, PCC/MSE bars
    tsne.png             t-SNE of raw PCA, AE latent and model embedding, coloured by label
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from bulkfm.common.atomic import atomic_path, write_text_atomic
from bulkfm.evaluate.baselines import gene_mean, knn_impute
from bulkfm.evaluate.metrics import PooledStats
from bulkfm.evaluate.plots import plot_reconstruction, plot_tsne
from bulkfm.evaluate.probes import probe_cv, probe_repeated_cv, probe_split
from bulkfm.matrix.store import iter_row_batches, open_matrix
from bulkfm.model.checkpoint import is_complete, load
from bulkfm.train.config import saved_config
from bulkfm.train.data import DataError, apply_mask, random_mask, step_generator
from bulkfm.train.ddp import pick_device
from bulkfm.train.embed import iter_embeddings, model_view, readout_of

log = logging.getLogger(__name__)

SCATTER_POINTS = 20000


def read_labels(path: str | os.PathLike[str], samples: list[str]) -> pd.DataFrame:
    """labels TSV (sample_id, label[, group]) restricted to the matrix samples."""
    path = Path(path)
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    if not {"sample_id", "label"} <= set(table.columns):
        raise DataError(f"{path}: needs columns sample_id and label (optional group)")
    if table["sample_id"].duplicated().any():
        raise DataError(f"{path}: sample {table['sample_id'][table['sample_id'].duplicated()].iloc[0]!r} "
                        "listed twice")
    if "group" not in table.columns:
        table["group"] = table["sample_id"]
    known = set(samples)
    kept = table[table["sample_id"].isin(known) & (table["label"] != "")]
    if len(kept) < len(table):
        log.warning("%s: %d of %d labelled samples are not in the matrix or have no label",
                    path, len(table) - len(kept), len(table))
    return kept.reset_index(drop=True)


def _held_out(train_dir: Path, samples: list[str]) -> tuple[np.ndarray, np.ndarray, str]:
    """(held-out rows, train rows, protocol).

    The held-out split is the run's test split (val if it has none), chosen from splits.tsv as
    written, not from what the matrix happens to hold: held-out samples missing from the matrix
    are named in a warning and in the protocol, and none present is an error.
    """
    split_path = train_dir / "splits.tsv"
    pos = {s: i for i, s in enumerate(samples)}
    if split_path.exists():
        split = pd.read_csv(split_path, sep="\t", dtype=str, keep_default_na=False)
        if split["sample_id"].isin(pos).any():
            train = np.array(sorted(pos[s] for s in split.loc[split["split"] == "train", "sample_id"]
                                    if s in pos), dtype=np.int64)
            for name in ("test", "val"):
                rows = split.loc[split["split"] == name, "sample_id"]
                if not len(rows):
                    continue
                missing = [s for s in rows if s not in pos]
                protocol = f"{name} split of {split_path}"
                if len(missing) == len(rows):
                    raise DataError(f"{split_path}: none of the {len(rows)} {name} samples is in this "
                                    f"matrix (e.g. {', '.join(missing[:5])}); evaluate on the matrix "
                                    "the model was trained from, or rerun the split")
                if missing:
                    shown = ", ".join(missing[:20]) + (f", ... ({len(missing) - 20} more)" if len(missing) > 20 else "")
                    log.warning("%d of %d %s samples are not in the matrix and are not scored: %s",
                                len(missing), len(rows), name, shown)
                    protocol += f"; {len(missing)} of {len(rows)} missing from the matrix: {shown}"
                return (np.array(sorted(pos[s] for s in rows if s in pos), dtype=np.int64), train, protocol)
            raise DataError(f"{split_path}: no test or val samples; nothing is "
                            "held out (rerun the split with test_fraction > 0)")
    return np.arange(len(samples)), np.zeros(0, np.int64), "all samples (new matrix)"


@dataclass
class _Run:
    """A trained run as evaluate reads it: the model, its AE, readout, and for a run started
    with ``--init`` the pretrained model (zero-shot) with its own readout."""
    model: torch.nn.Module
    ae: torch.nn.Module | None
    readout: Any
    zero_shot: torch.nn.Module | None
    zero_readout: Any
    mask_fraction: float


def _load_run(train_dir: Path, dev: torch.device, mask_fraction: float | None) -> _Run:
    model = load(train_dir, map_location=dev)
    ae = load(train_dir / "ae", map_location=dev) if is_complete(train_dir / "ae") else None
    readout = readout_of(train_dir)
    if readout is not None and readout.weights.shape[0] != len(model.genes):
        raise DataError(f"{train_dir}/readout was fitted for another model ({readout.weights.shape[0]} "
                        f"genes, model {len(model.genes)}); delete it and rerun bulkfm train")
    cfg_path = train_dir / "config.json"
    record = json.loads(cfg_path.read_text()) if cfg_path.exists() else {}
    zero_shot = zero_readout = None
    if record.get("init"):
        zero_shot = load(Path(record["init"]), map_location=dev)
        zero_readout = readout_of(record["init"])
        if list(zero_shot.genes) != list(model.genes):
            raise DataError(f"{record['init']}: the pretrained model's genes differ from "
                            f"{train_dir}'s; it is not the model this run started from")
    if mask_fraction is None:
        mask_fraction = saved_config(train_dir).mask_fraction
    return _Run(model, ae, readout, zero_shot, zero_readout, mask_fraction)


def _gene_means(train_dir: Path, genes: list[str]) -> np.ndarray:
    """Gene means of the training data (the gene-mean baseline), saved at training time."""
    stats_path = train_dir / "gene_stats.parquet"
    if not stats_path.exists():
        raise DataError(f"{train_dir}: no gene_stats.parquet; not a bulkfm train directory")
    stats = pd.read_parquet(stats_path).set_index("gene")
    return stats.reindex(genes)["mean"].to_numpy(np.float32)


def _predict(run: _Run, others: dict, x: np.ndarray, x_in: torch.Tensor, mask: np.ndarray,
             ids: list[str], means: np.ndarray, reference: np.ndarray, exclude: np.ndarray,
             knn_k: int) -> dict[str, np.ndarray]:
    """Every method's prediction [B, G] for one batch of masked held-out samples."""
    preds = {"gene_mean": gene_mean(means, len(x)),
             "knn": knn_impute(x, mask, reference, knn_k, exclude=exclude)}
    if run.ae is not None:
        preds["ae"] = run.ae(x_in)[0].float().cpu().numpy()
    if run.readout is not None:
        parts = run.readout.part_predictions(run.model, x_in, run.readout.exclude_for(ids))
        preds["model"], preds["trunk"] = run.readout.combine(parts), parts["trunk"]
    else:
        preds["model"] = run.model(x_in).float().cpu().numpy()
    for name, (other, other_ro, perm) in others.items():
        xo = x_in[:, perm]  # the other run's gene order
        po = (other_ro.predict(other, xo, other_ro.exclude_for(ids))
              if other_ro is not None else other(xo).float().cpu().numpy())
        out_ = np.empty_like(po)
        out_[:, perm] = po  # back to this model's gene order
        preds[name] = out_
    if run.zero_shot is not None:
        preds["zero_shot"] = (run.zero_readout.predict(run.zero_shot, x_in,
                                                       run.zero_readout.exclude_for(ids))
                              if run.zero_readout is not None
                              else run.zero_shot(x_in).float().cpu().numpy())
    return preds


def _score(run: _Run, others: dict, methods: list[str], data, held: np.ndarray,
           train_rows: np.ndarray, means: np.ndarray, *, dev, batch_size: int, knn_k: int,
           max_reference: int, seed: int, rng: np.random.Generator, progress: bool
           ) -> tuple[dict[str, PooledStats], dict[str, list[tuple[np.ndarray, np.ndarray]]]]:
    """Mask each held-out batch once (same masks for every method) and pool the scores."""
    # kNN reference: train samples if present, else the held-out samples themselves (minus self).
    ref_rows = train_rows if len(train_rows) else held
    if len(ref_rows) > max_reference:
        ref_rows = np.sort(rng.choice(ref_rows, max_reference, replace=False))
    reference = data.rows(ref_rows)
    ref_pos = {int(r): i for i, r in enumerate(ref_rows)}
    present = data.gene_index >= 0
    pooled = {m: PooledStats() for m in methods}
    scatter: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {m: [] for m in methods}
    budget = SCATTER_POINTS // max(1, math.ceil(len(held) / batch_size))
    for b, (idx, x) in enumerate(tqdm(iter_row_batches(data, batch_size, held), desc="evaluate",
                                      total=math.ceil(len(held) / batch_size),
                                      disable=not progress, unit="batch")):
        mask = random_mask(x.shape, run.mask_fraction, step_generator(seed, 77, b)).numpy()
        mask &= present  # genes absent from the matrix are never scored
        x_in = apply_mask(torch.from_numpy(x), torch.from_numpy(mask),
                          run.model.config.mask_value).to(dev)
        with torch.no_grad():
            preds = _predict(run, others, x, x_in, mask, [str(data.samples[i]) for i in idx],
                             means, reference,
                             np.array([ref_pos.get(int(i), -1) for i in idx]), knn_k)
        for m in methods:
            pooled[m].add(x, preds[m], mask)
            t, p = x[mask], preds[m][mask]
            take = rng.choice(t.size, min(budget, t.size), replace=False)
            scatter[m].append((t[take], p[take]))
    return pooled, scatter


def _summary(run: _Run, methods: list[str], pooled: dict[str, PooledStats]) -> dict[str, Any]:
    recon = {m: pooled[m].result() for m in methods}
    model_pcc = np.asarray(pooled["model"].sample_pcc)
    result: dict[str, Any] = {
        "reconstruction": recon,
        "model_beats_gene_mean": bool(recon["model"]["pcc"] > recon["gene_mean"]["pcc"]),
        "model_beats_knn": bool(recon["model"]["pcc"] > recon["knn"]["pcc"]),
        # paired view: share of held-out samples whose masked-gene PCC the model beats
        "model_better_samples": {m: float(np.mean(model_pcc > np.asarray(pooled[m].sample_pcc)))
                                 for m in methods if m != "model"},
        "paired": {m: paired_test(pooled["model"].sample_pcc, pooled[m].sample_pcc)
                   for m in methods if m != "model"},
        "readout": ({"mode": run.readout.mode, "parts": run.readout.parts,
                     "mean_weights": run.readout.report.get("mean_weights"),
                     "embedding": run.readout.embedding_report()}
                    if run.readout is not None else None),
    }
    for other in ("ae", "knn"):
        if other in recon:
            result[f"model_ge_{other}"] = bool(recon["model"]["pcc"] >= recon[other]["pcc"]
                                               and recon["model"]["mse"] <= recon[other]["mse"])
    return result


def _probe_verdicts(result: dict[str, Any], repeated: dict[str, Any]) -> None:
    pr = result["probe"]
    if pr:
        result["probe_model_ge_pca"] = bool(pr["model"]["accuracy"] >= pr["pca_raw"]["accuracy"])
        if "ae_latent" in pr:
            result["probe_model_ge_ae"] = bool(pr["model"]["accuracy"]
                                               >= pr["ae_latent"]["accuracy"])
    if repeated:
        result["probe_repeated_cv"] = repeated
        result["probe_model_ge_pca_repeated_cv"] = bool(
            repeated["model"]["accuracy"] >= repeated["pca_raw"]["accuracy"])


def evaluate(train_dir: str | os.PathLike[str], matrix_path: str | os.PathLike[str], *,
             labels: str | None = None, out: str | os.PathLike[str] | None = None,
             batch_size: int = 8, mask_fraction: float | None = None, knn_k: int = 10,
             max_reference: int = 2000, max_samples: int = 2000, seed: int = 0,
             device: str = "auto", allow_missing: float = 0.0, probe_repeats: int = 3,
             progress: bool = True, compare: list[str] | None = None) -> dict[str, Any]:
    train_dir = Path(train_dir)
    out = Path(out) if out else train_dir / "evaluate"
    dev = pick_device(device)
    run = _load_run(train_dir, dev, mask_fraction)
    model = run.model
    matrix = open_matrix(matrix_path)
    data = model_view(model, matrix, allow_missing)
    held, train_rows, protocol = _held_out(train_dir, list(matrix.samples))
    rng = np.random.default_rng(seed)
    if len(held) > max_samples:
        held = np.sort(rng.choice(held, max_samples, replace=False))
    log.info("held out: %d samples (%s)", len(held), protocol)
    others = {f"compare:{Path(c).name}": _comparable(c, model.genes, dev)
              for c in (compare or [])}
    methods = (["model"] + (["trunk"] if run.readout is not None else []) + ["gene_mean", "knn"]
               + (["ae"] if run.ae is not None else [])
               + (["zero_shot"] if run.zero_shot else []) + list(others))
    pooled, scatter = _score(run, others, methods, data, held, train_rows,
                             _gene_means(train_dir, list(model.genes)), dev=dev,
                             batch_size=batch_size, knn_k=knn_k, max_reference=max_reference,
                             seed=seed, rng=rng, progress=progress)
    result: dict[str, Any] = {
        "train_dir": str(train_dir), "matrix": str(matrix_path), "held_out": protocol,
        "n_held_out": int(len(held)), "mask_fraction": run.mask_fraction,
        "n_genes": len(model.genes), **_summary(run, methods, pooled)}
    recon = result["reconstruction"]
    with atomic_path(out) as tmp:
        tmp.mkdir()
        pd.DataFrame([{"method": m, **recon[m]} for m in methods]).to_csv(
            tmp / "reconstruction.tsv", sep="\t", index=False)
        pd.DataFrame({"sample_id": [str(data.samples[i]) for i in held],
                      **{m: pooled[m].sample_pcc for m in methods}}).to_csv(
            tmp / "sample_pcc.tsv", sep="\t", index=False)
        plot_reconstruction({m: tuple(np.concatenate(v) for v in zip(*scatter[m], strict=True))
                             for m in methods}, recon, tmp / "reconstruction.png")
        if labels:
            result["probe"], repeated = _probes(run, data, labels, held, train_rows, dev,
                                                batch_size, max_samples, seed, tmp, progress,
                                                protocol, probe_repeats)
            _probe_verdicts(result, repeated)
        write_text_atomic(tmp / "metrics.json", json.dumps(result, indent=2) + "\n")
    return result


def _comparable(path: str, genes: list[str], dev):
    """(model, readout or None, perm): ``x[:, perm]`` is x in that model's gene order."""
    other = load(path, map_location=dev)
    pos = {g: i for i, g in enumerate(genes)}
    if sorted(other.genes) != sorted(genes):
        raise DataError(f"--compare {path}: its model has other genes ({len(other.genes)}, "
                        f"{len(set(other.genes) - set(genes))} not in this model); compare runs "
                        "on the same genes (train it on the same gene list)")
    return other, readout_of(path), np.array([pos[g] for g in other.genes])


def paired_test(a: list[float], b: list[float]) -> dict[str, float]:
    """Per-sample PCC of the model (a) vs another method (b) on the same samples and masks."""
    from scipy.stats import wilcoxon

    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    d = x[ok] - y[ok]
    p = float(wilcoxon(x[ok], y[ok]).pvalue) if (d != 0).any() else 1.0
    return {"better_fraction": float(np.mean(d > 0)) if d.size else float("nan"),
            "mean_diff": float(d.mean()) if d.size else float("nan"), "wilcoxon_p": p,
            "n": int(d.size)}


def _probe_table(data, labels_path, held: np.ndarray, train_rows: np.ndarray,
                 max_samples: int, seed: int) -> tuple[np.ndarray, pd.DataFrame, bool]:
    """(matrix rows, their label table, whether the train/held-out split is used)."""
    table = read_labels(labels_path, list(data.samples))
    pos = {s: i for i, s in enumerate(data.samples)}
    lab_rows = np.array([pos[s] for s in table["sample_id"]], dtype=np.int64)
    in_train = np.isin(lab_rows, train_rows)
    in_held = np.isin(lab_rows, held)
    use_split = bool(in_train.any() and in_held.any())
    keep = (in_train | in_held) if use_split else np.ones(len(lab_rows), bool)
    rng = np.random.default_rng(seed)
    if keep.sum() > 2 * max_samples:  # bounded: O(samples x d) embeddings, never x genes
        keep &= np.isin(np.arange(len(keep)), rng.choice(np.nonzero(keep)[0], 2 * max_samples,
                                                         replace=False))
    rows = lab_rows[keep]
    order = np.argsort(rows)
    return rows[order], table[keep].iloc[order].reset_index(drop=True), use_split


def _probe_features(run: _Run, data, rows: np.ndarray, dev, batch_size: int,
                    progress: bool) -> dict[str, np.ndarray]:
    """Feature sets: ``model`` (the sample embedding), its blocks ``model_pooled``,
    ``pca_train`` (the model's PCA, fitted on its training split), ``ae_latent``, and
    ``pca_raw`` (raw log1p; PCA-50 refitted inside each probe fit)."""
    feats: dict[str, list[np.ndarray]] = {"pca_raw": [], "ae_latent": [], "model": [],
                                          "model_pooled": [], "pca_train": []}
    for idx, emb, parts, _ in iter_embeddings(run.model, data, rows, batch_size, dev, progress,
                                              run.readout):
        feats["model"].append(emb)
        if parts["pca"] is not None:  # ablations: the model's blocks alone
            feats["model_pooled"].append(parts["pooled"])
            feats["pca_train"].append(parts["pca"])
        if parts["ae"] is not None:
            feats["ae_latent"].append(parts["ae"])
        feats["pca_raw"].append(data.rows(idx))  # raw log1p of model genes (PCA inside probe)
    if run.ae is not None and not feats["ae_latent"]:
        for idx, x in iter_row_batches(data, batch_size, rows):
            with torch.no_grad():
                feats["ae_latent"].append(run.ae.encode(torch.from_numpy(x).to(dev)).cpu().numpy())
    return {k: np.concatenate(v) for k, v in feats.items() if v}


def _probes(run: _Run, data, labels_path, held, train_rows, dev, batch_size, max_samples,
            seed, out: Path, progress: bool, protocol: str,
            repeats: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """(held-out probe per feature set, repeated grouped CV per feature set)."""
    rows, table, use_split = _probe_table(data, labels_path, held, train_rows, max_samples,
                                          seed)
    labels = table["label"].to_numpy()
    if len(np.unique(labels)) < 2:
        log.warning("fewer than 2 label classes among the evaluated samples: no probe")
        return {}, {}
    F = _probe_features(run, data, rows, dev, batch_size, progress)
    n_pca = 50
    groups = table["group"].to_numpy()
    res: dict[str, Any] = {"protocol": ("fit on train split, scored on " + protocol)
                           if use_split else "grouped 5-fold cross-validation",
                           "n_classes": int(len(np.unique(labels))), "pca_components": n_pca,
                           "classifier": "StandardScaler + LogisticRegression, C by inner "
                                         "grouped CV on the training samples"}
    for name, X in F.items():
        pca = n_pca if name == "pca_raw" else None
        if use_split:
            tr, te = np.isin(rows, train_rows), np.isin(rows, held)
            res[name] = probe_split(X, labels, tr, te, seed, pca, groups=groups)
        else:
            res[name] = probe_cv(X, labels, groups, seed=seed, pca=pca)
    repeated: dict[str, Any] = {}
    if repeats > 0 and len(np.unique(groups)) >= 2:
        # All evaluated samples (train and held-out), folds by group: the same folds for every
        # feature set. The model has seen the train samples without labels, PCA is refitted
        # on each fold's training part.
        repeated = probe_repeated_cv(F, labels, groups, repeats=repeats, seed=seed,
                                     pca={"pca_raw": n_pca})
    table_rows = [{"features": k, "protocol": "held-out", **v} for k, v in res.items()
                  if isinstance(v, dict)]
    table_rows += [{"features": k, "protocol": "repeated grouped CV", **v}
                   for k, v in repeated.items()]
    pd.DataFrame(table_rows).to_csv(out / "probe.tsv", sep="\t", index=False)
    _tsne(F, labels, out, seed)
    return res, repeated


def _tsne(F: dict[str, np.ndarray], labels: np.ndarray, out: Path, seed: int) -> None:
    from sklearn.decomposition import PCA

    raw = F["pca_raw"]
    panels = {"raw log1p (PCA 50)": PCA(min(50, len(raw) - 1), random_state=seed).fit_transform(raw)}
    if "ae_latent" in F:
        panels["AE latent"] = F["ae_latent"]
    panels["model embedding"] = F["model"]
    if len(raw) >= 5:
        plot_tsne(panels, labels, out / "tsne.png", seed)
