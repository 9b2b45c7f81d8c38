"""``bulkfm evaluate-generator``: held-out conditions against the baselines that matter.

Held-out samples are those ``train-generator`` kept out (whole studies / groups, and the
unseen combinations; ``split.tsv``). Per held-out condition (its biological + perturbation
fields) with at least ``min_samples`` real samples, the **change** from the training grand
mean is compared: Pearson r of (generated mean - grand) vs (real mean - grand), on all genes
and on the condition's top-50 genes by |real change|; baselines: the training mean of the
same condition (seen), the additive model grand + sum of each field's own effect (unseen),
the nearest training condition (most shared field values). Realism in a PCA fitted on half
of the real training samples (whole groups; the other half is the real-sample reference, so
no compared profile is in the fit): random-forest AUC real vs generated (out-of-fold, folds
by hold-out group), energy distance, kNN precision/recall (Kynkäänniemi et al. 2019, k = 5); a label classifier trained on real data
scored on generated vs real held-out profiles; within-condition per-gene variance ratio.
Disentanglement: linear probes of each latent part for each field; sex swap counterfactual.
Writes OUT/report.md, OUT/metrics.json, figures; the caller prints the JSON last.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from bulkfm.common.atomic import write_text_atomic
from bulkfm.evaluate.metrics import pearson
from bulkfm.generate.conditions import (NUMERIC, UNKNOWN, ConditionError, attach_study,
                                        check_samples,
                                        condition_fields, condition_key, group_of, read_metadata)
from bulkfm.generate.model import Generator
from bulkfm.generate.query import model_view
from bulkfm.generate.train import load_generator
from bulkfm.matrix.store import iter_row_batches

log = logging.getLogger(__name__)
SEX_GENES = {"XIST": "ENSG00000229807", "RPS4Y1": "ENSG00000129824", "DDX3Y": "ENSG00000067048",
             "KDM5D": "ENSG00000012817", "UTY": "ENSG00000183878", "EIF1AY": "ENSG00000198692"}


def gene_index(genes: list[str], symbol: str) -> int | None:
    ens = SEX_GENES.get(symbol)
    for i, g in enumerate(genes):
        base = g.split(".")[0]
        if g == symbol or g.split("|")[0] == symbol or base == ens:
            return i
    return None


def _resolve_rows(model: Generator, meta: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """Metadata rows -> model codes; biological/perturbation values the model never saw make a
    row unevaluable (False); unseen technical values (a held-out study) become unknown."""
    vocab = model.vocab
    table = pd.DataFrame(UNKNOWN, index=meta.index, columns=vocab.fields)
    ok = np.ones(len(meta), dtype=bool)
    for f in vocab.fields:
        if f not in meta.columns:
            continue
        col = meta[f].astype(str)
        if f in NUMERIC:
            table[f] = col
            continue
        known = set(vocab.values[f])
        unseen = ~col.isin(known | {UNKNOWN})
        table[f] = col.where(~unseen, UNKNOWN)
        if group_of(f) != "tech":
            ok &= ~unseen.to_numpy()
    return table, ok


def _codes(model: Generator, table: pd.DataFrame) -> dict[str, torch.Tensor]:
    return {f: torch.from_numpy(v) for f, v in model.vocab.encode(table).items()}


def energy_distance(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.spatial.distance import cdist

    return float(2 * cdist(a, b).mean() - cdist(a, a).mean() - cdist(b, b).mean())


def knn_precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 5) -> tuple[float, float]:
    from scipy.spatial.distance import cdist

    def radii(x: np.ndarray) -> np.ndarray:
        d = cdist(x, x)
        return np.sort(d, axis=1)[:, min(k, len(x) - 1)]

    d = cdist(fake, real)  # [F, R]
    precision = float((d <= radii(real)[None, :]).any(1).mean())
    recall = float((d.T <= radii(fake)[None, :]).any(1).mean())
    return precision, recall


def rf_auc(real: np.ndarray, fake: np.ndarray, seed: int,
           groups: np.ndarray | None = None) -> float:
    """Cross-validated random-forest AUC of real [N, c] vs generated [M, c] profiles.

    ``groups`` ([N], optional) names each real profile's hold-out group (participant, study);
    ``fake`` must then be one profile per real one, in the same order, and each is put in its
    real twin's fold. Held-out sets hold several profiles of one group (a participant's tumour
    and normal, one tumour under two processings): with sample-level folds the forest learns
    "looks like this participant = real" from one profile and is scored on its sibling, so even
    real samples of the same conditions score well above 0.5 against held-out ones. Folds by
    group test only what tells generated from real in groups the forest has not seen."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, cross_val_predict

    x = np.vstack([real, fake])
    y = np.r_[np.zeros(len(real)), np.ones(len(fake))]
    folds = min(5, len(real), len(fake))
    g = None
    if groups is not None:
        if len(groups) != len(real) or len(fake) != len(real):
            raise ValueError("rf_auc: groups need one generated profile per real one")
        g = np.r_[groups, groups]
        folds = min(folds, len(set(groups)))
    if folds < 2:
        return float("nan")
    rf = RandomForestClassifier(n_estimators=200, min_samples_leaf=2, random_state=seed, n_jobs=1)
    cv = (StratifiedGroupKFold(folds, shuffle=True, random_state=seed) if g is not None
          else StratifiedKFold(folds, shuffle=True, random_state=seed))
    p = cross_val_predict(rf, x, y, cv=cv, groups=g, method="predict_proba")[:, 1]
    return float(roc_auc_score(y, p))


def _r2(real: np.ndarray, pred: np.ndarray) -> float:
    ss = float(((real - real.mean()) ** 2).sum())
    return 1 - float(((real - pred) ** 2).sum()) / ss if ss > 0 else float("nan")


def _mean_or_none(v: list[float]) -> float | None:
    v = [x for x in v if x is not None and not math.isnan(x)]
    return float(np.mean(v)) if v else None


@dataclass
class _TrainStats:
    """Streamed statistics of the training samples, in log1p units."""

    grand: np.ndarray  # [G] training grand mean
    sums: dict[str, np.ndarray]  # condition key -> [G] sum
    counts: dict[str, int]  # condition key -> samples
    fsum: dict[tuple[str, str], np.ndarray]  # (field, value) -> [G] sum
    fcnt: dict[tuple[str, str], int]
    ref: np.ndarray  # [R, G] a random subset of training profiles (PCA, classifiers, probes)
    ref_ids: list[str]  # [R]


@dataclass
class _Held:
    """Held-out real profiles and their generated counterparts."""

    ids: list[str]  # every held-out sample evaluated
    real: np.ndarray  # [H, G]
    table: pd.DataFrame  # model-vocabulary metadata of ids
    ok: np.ndarray  # [H] bool: every bio/pert value known to the model
    fake: np.ndarray  # [H_ok, 2, G] two generated profiles per evaluable sample (realism)
    keys: np.ndarray  # [H_ok] condition keys of the evaluable samples
    groups: np.ndarray  # [H] hold-out group (study, participant or the sample) of ids

    @property
    def groups_ok(self) -> np.ndarray:
        return self.groups[self.ok]

    # condition key -> (sum [G], sum of squares [G], profiles) of every generated profile
    gen: dict[str, tuple[np.ndarray, np.ndarray, int]] = field(default_factory=dict)

    @property
    def real_ok(self) -> np.ndarray:
        return self.real[self.ok]

    @property
    def ids_ok(self) -> list[str]:
        return [s for s, o in zip(self.ids, self.ok, strict=True) if o]


def _split_ids(model_dir: Path, meta: pd.DataFrame, metadata_path: str | os.PathLike[str],
               pos: dict[str, int], max_samples: int, rng: np.random.Generator
               ) -> tuple[list[str], list[str], dict[str, str]]:
    """-> (training IDs, held-out IDs (at most max_samples), sample ID -> hold-out group) from
    train-generator's split.tsv."""
    split_path = model_dir / "split.tsv"
    if not split_path.is_file():
        raise ConditionError(f"{split_path} missing: give the output directory of "
                             "`bulkfm train-generator`")
    split = pd.read_csv(split_path, sep="\t", dtype=str, keep_default_na=False)
    train_ids = set(split.loc[split.split == "train", "sample_id"])
    train = [s for s in meta.index if s in train_ids]
    held = [s for s in meta.index if s not in train_ids]
    if not held:
        raise ConditionError(f"{metadata_path}: every sample was used in training; evaluation "
                             "needs held-out samples (train with holdout_fraction > 0)")
    if len(held) > max_samples:
        held = sorted(rng.choice(held, max_samples, replace=False).tolist(), key=pos.get)
    return train, held, dict(zip(split["sample_id"], split["group"], strict=True))


def _train_stats(data: Any, train: list[str], pos: dict[str, int], keys: pd.Series,
                 table: pd.DataFrame, cond: list[str], max_reference: int, batch: int,
                 rng: np.random.Generator) -> _TrainStats:
    g = len(data.genes)
    st = _TrainStats(np.zeros(g), {}, {}, {}, {}, np.zeros((0, g), np.float32), [])
    ref_ids = set(rng.choice(train, min(max_reference, len(train)), replace=False).tolist())
    ref_x = []
    for idx, x in iter_row_batches(data, batch, np.array([pos[s] for s in train])):
        for i, row in zip(idx, x.astype(np.float64), strict=True):
            s = data.samples[i]
            st.grand += row
            k = keys[s]
            st.sums[k] = st.sums.get(k, 0) + row
            st.counts[k] = st.counts.get(k, 0) + 1
            for f in cond:
                fv = (f, table.at[s, f])
                st.fsum[fv] = st.fsum.get(fv, 0) + row
                st.fcnt[fv] = st.fcnt.get(fv, 0) + 1
            if s in ref_ids:
                ref_x.append(row)
                st.ref_ids.append(s)
    st.grand /= len(train)
    st.ref = np.array(ref_x, dtype=np.float32)
    return st


def _rounds(sizes: dict[str, int], per_sample: int, per_condition: int, min_n: int,
            budget: int) -> dict[str, int]:
    """Generated profiles per held-out sample, per condition key (sizes: its real samples).
    Conditions scored (>= min_n real) get per_sample each and at least per_condition in all;
    the part above per_sample shrinks to fit ``budget`` profiles in total. Others get the 2
    the realism metrics use."""
    want = {k: max(per_sample * n, per_condition) for k, n in sizes.items() if n >= min_n}
    base = sum(per_sample * sizes[k] for k in want)
    extra = sum(want.values()) - base
    scale = min(1.0, max(budget - base, 0) / extra) if extra else 1.0
    return {k: (max(2, -(-int(per_sample * n + scale * (want[k] - per_sample * n)) // n))
                if k in want else 2) for k, n in sizes.items()}


def _generate_held(model: Generator, data: Any, held: list[str], pos: dict[str, int],
                   meta: pd.DataFrame, table: pd.DataFrame, ok: np.ndarray, keys: pd.Series,
                   groups: dict[str, str], draws: tuple[int, int, int, int], batch: int,
                   seed: int) -> _Held:
    """Real held-out profiles and generated ones, each with its held-out sample's codes;
    draws = (per sample, per condition, min real samples, budget) for _rounds. Two per sample
    are kept for the realism metrics; the rest only as per-condition sums, so memory is
    O(samples x genes)."""
    real = np.concatenate([x for _, x in iter_row_batches(data, batch,
                                                          np.array([pos[s] for s in held]))])
    hok = ok[[meta.index.get_loc(s) for s in held]]
    htab = table.loc[held]
    codes = _codes(model, htab.loc[hok])
    gen = torch.Generator().manual_seed(seed)
    fake = np.stack([model.sample(codes, gen).numpy() for _ in range(2)], 1)
    h = _Held(held, real, htab, hok, fake, keys.loc[htab.index[hok]].to_numpy(),
              np.array([groups[s] for s in held]))
    sizes = {k: int((h.keys == k).sum()) for k in sorted(set(h.keys))}
    per = _rounds(sizes, *draws)
    for k in sizes:
        rows = torch.from_numpy(np.nonzero(h.keys == k)[0])
        sub = {f: v[rows] for f, v in codes.items()}
        x = h.fake[rows.numpy()].reshape(-1, real.shape[1]).astype(np.float64)
        acc = [x.sum(0), (x ** 2).sum(0), len(x)]
        # Weak effects (sex in LCLs) need many profiles for a condition mean that is the
        # model's and not the draw's: 20 per sample moved the seen r by up to 0.12.
        for _ in range(per[k] - 2):
            x = model.sample(sub, gen).numpy().astype(np.float64)
            acc = [acc[0] + x.sum(0), acc[1] + (x ** 2).sum(0), acc[2] + len(x)]
        h.gen[k] = (acc[0], acc[1], acc[2])
    return h


def _condition_record(k: str, sel: np.ndarray, h: _Held, st: _TrainStats, cond: list[str],
                      table: pd.DataFrame, train: list[str]) -> dict[str, Any]:
    """Pearson r of the change from the grand mean for one held-out condition: generator,
    baseline (training mean if seen, else additive), nearest training condition."""
    g = h.real.shape[1]
    grand = st.grand
    rmean = h.real_ok[sel].mean(0)
    gsum, _, gn = h.gen[k]
    gmean = gsum / gn
    seen = st.counts.get(k, 0) >= 1
    row0 = h.table.loc[np.array(h.ids_ok)[sel][0]]
    if seen:
        base = st.sums[k] / st.counts[k]
    else:
        base = grand + sum((st.fsum[(f, row0[f])] / st.fcnt[(f, row0[f])] - grand)
                           for f in cond if (f, row0[f]) in st.fcnt)
    near = _nearest_condition(k, row0, cond, st.counts, table, train)
    nmean = st.sums[near] / st.counts[near] if near else grand
    dr = rmean - grand
    top = np.argsort(-np.abs(dr))[:50]
    rec = {"condition": k, "seen": bool(seen), "n_real": int(sel.sum()),
           "n_generated": int(gn),
           "generator_r": pearson(gmean - grand, dr),
           "baseline_r": pearson(base - grand, dr),
           "nearest_r": pearson(nmean - grand, dr), "nearest_condition": near,
           "generator_r_top50": pearson((gmean - grand)[top], dr[top]),
           "baseline_r_top50": pearson((base - grand)[top], dr[top]),
           "nearest_r_top50": pearson((nmean - grand)[top], dr[top]),
           "generator_r2": _r2(rmean, gmean), "baseline_r2": _r2(rmean, base),
           "grand_mean_r2": _r2(rmean, grand)}
    rec["_delta"] = (dr, gmean - grand, base - grand)
    return rec


def _summary(recs: list[dict], name: str) -> dict[str, Any] | None:
    """Mean over conditions of each r / R², the baseline's keys named ``name``."""
    if not recs:
        return None
    return {"generator_r": _mean_or_none([r["generator_r"] for r in recs]),
            f"{name}_r": _mean_or_none([r["baseline_r"] for r in recs]),
            "generator_r_top50": _mean_or_none([r["generator_r_top50"] for r in recs]),
            f"{name}_r_top50": _mean_or_none([r["baseline_r_top50"] for r in recs]),
            "nearest_r": _mean_or_none([r["nearest_r"] for r in recs]),
            "nearest_r_top50": _mean_or_none([r["nearest_r_top50"] for r in recs]),
            "generator_r2": _mean_or_none([r["generator_r2"] for r in recs]),
            f"{name}_r2": _mean_or_none([r["baseline_r2"] for r in recs]),
            "grand_mean_r2": _mean_or_none([r["grand_mean_r2"] for r in recs]),
            "n": len(recs)}


def _train_copies(h: _Held, st: _TrainStats, full: pd.Series, pool: np.ndarray,
                  rng: np.random.Generator) -> np.ndarray:
    """[H_ok, G]: for each held-out row a real training profile from ``pool`` ([R] bool over
    the reference) of the same condition (every field, technical ones too; else any),
    distinct within a condition while they last."""
    ref_keys = full.loc[st.ref_ids].to_numpy()
    pools: dict[str, list[int]] = {}
    out = np.empty_like(h.real_ok)
    for i, k in enumerate(full.loc[h.ids_ok].to_numpy()):
        if not pools.get(k):
            cand = np.nonzero((ref_keys == k) & pool)[0]
            pools[k] = list(rng.permutation(cand if len(cand) else np.nonzero(pool)[0]))
        out[i] = st.ref[pools[k].pop()]
    return out


def _pca_half(ref_ids: list[str], group: dict[str, str], seed: int) -> np.ndarray:
    """[R] bool: the reference rows the realism PCA is fitted on, whole groups, half of them.

    A PCA fitted on n samples of many genes fits its trailing components to those samples:
    held-out samples vary less there (0.52x on components 20-49 of the two-processing TCGA
    set), so a classifier tells apart anything that is in the fit, real samples included.
    Fitted on half of the training groups, the other half supplies the real-sample reference,
    and neither side of any comparison is in the fit."""
    groups = np.array([group[s] for s in ref_ids])
    uniq = np.unique(groups)
    if len(uniq) < 4:
        return np.ones(len(ref_ids), dtype=bool)
    first = np.random.default_rng(seed).permutation(uniq)[: len(uniq) // 2]
    return np.isin(groups, first)


def _baseline(p_real: np.ndarray, p_other: np.ndarray, seed: int, groups: np.ndarray
              ) -> dict[str, float]:
    prec, rec = knn_precision_recall(p_real, p_other)
    return {"auc_real_vs_generated": rf_auc(p_real, p_other, seed, groups),
            "energy_distance": energy_distance(p_real, p_other),
            "knn_precision": prec, "knn_recall": rec}


def _realism(h: _Held, st: _TrainStats, full: pd.Series, group: dict[str, str], seed: int,
             rng: np.random.Generator) -> tuple[dict[str, Any], Any, np.ndarray, np.ndarray]:
    """RF AUC (folds by hold-out group), energy distance, kNN precision/recall in a PCA of
    half of the real training profiles, for the generator (one profile per held-out sample),
    for mean + Gaussian noise and for real training profiles of the same conditions from the
    other half (what a perfect copy of the training data scores). Cross-fitted: each half in
    turn is the PCA's, with another generated draw; the metrics are the mean of the two.
    -> (metrics, first PCA, real [H_ok, c], generated [H_ok, c] in it)."""
    from sklearn.decomposition import PCA

    half = _pca_half(st.ref_ids, group, seed)
    fits = [half, ~half] if (~half).any() else [half]
    noise = _gaussian_baseline(h.real_ok, h.keys, st.sums, st.counts, st.grand, rng)
    g = h.groups_ok
    runs, views = [], []
    for i, fit in enumerate(fits):
        pool = ~fit if (~fit).any() else fit
        ncomp = int(min(50, fit.sum() - 1, h.real.shape[1]))
        pca = PCA(ncomp, random_state=seed).fit(st.ref[fit])
        p_real = pca.transform(h.real_ok)
        p_fake = pca.transform(h.fake[:, i % h.fake.shape[1]])  # one per held-out sample
        copies = pca.transform(_train_copies(h, st, full, pool, rng))
        runs.append((_baseline(p_real, p_fake, seed + i, g),
                     _baseline(p_real, pca.transform(noise), seed + i, g),
                     _baseline(p_real, copies, seed + i, g)))
        views.append((pca, p_real, p_fake))

    def mean(j: int) -> dict[str, float]:
        return {k: float(np.mean([r[j][k] for r in runs])) for k in runs[0][j]}

    out = {**mean(0), "realism_baselines": {"gaussian_noise": mean(1), "train_samples": mean(2)}}
    return (out, *views[0])


def evaluate_generator(model_dir: str | os.PathLike[str], matrix_path: str | os.PathLike[str],
                       metadata_path: str | os.PathLike[str], *, out: str | None = None,
                       gen_per_sample: int = 20, min_profiles: int = 5000,
                       max_profiles: int = 300_000, min_samples: int = 3,
                       max_reference: int = 2000,
                       max_samples: int = 2000, seed: int = 0, batch: int = 256,
                       plots: bool = True) -> dict[str, Any]:
    if gen_per_sample < 2 or min_profiles < 0:
        raise ConditionError(f"gen_per_sample {gen_per_sample}, min_profiles {min_profiles}: "
                             "give --gen-per-sample >= 2 (two feed the realism metrics) and "
                             "--min-profiles >= 0")
    model_dir = Path(model_dir)
    model = load_generator(model_dir)
    data = model_view(model, matrix_path)
    meta, _ = read_metadata(metadata_path)
    check_samples(meta, data.samples, str(metadata_path))
    meta = attach_study(meta, data.matrix)
    pos = {s: i for i, s in enumerate(data.samples)}
    rng = np.random.default_rng(seed)
    train, held, groups = _split_ids(model_dir, meta, metadata_path, pos, max_samples, rng)
    cond = condition_fields(model.vocab)
    table, ok = _resolve_rows(model, meta)
    keys = table.apply(lambda r: condition_key(r, cond), axis=1) if cond else \
        pd.Series("all", index=table.index)
    st = _train_stats(data, train, pos, keys, table, cond, max_reference, batch, rng)
    h = _generate_held(model, data, held, pos, meta, table, ok, keys, groups,
                       (gen_per_sample, min_profiles, min_samples, max_profiles), batch, seed)
    per = [_condition_record(k, h.keys == k, h, st, cond, table, train)
           for k in sorted(set(h.keys)) if (h.keys == k).sum() >= min_samples]
    full = table.apply(lambda r: condition_key(r, list(model.vocab.fields)), axis=1)
    realism, pca, p_real, p_fake = _realism(h, st, full, groups, seed, rng)
    ref_tab = table.loc[st.ref_ids]
    labels = _label_accuracy(pca, st.ref, ref_tab, p_real, p_fake, h.table.loc[h.ids_ok], cond,
                             seed)
    seen_recs = [r for r in per if r["seen"]]
    unseen_recs = [r for r in per if not r["seen"]]
    result: dict[str, Any] = {
        "seen": _summary(seen_recs, "train_mean"),
        "unseen": _summary(unseen_recs, "additive"),
        **{k: v for k, v in realism.items() if k != "realism_baselines"},
        "label_accuracy_generated_over_real": labels.get("ratio"),
        "label_accuracy": labels,
        "variance_ratio_median": _variance_ratio(h, min_samples),
        "n_conditions": {"seen": len(seen_recs), "unseen": len(unseen_recs),
                         "skipped_small": len(set(h.keys)) - len(per),
                         "held_out_samples": len(held), "unevaluable_samples": int((~h.ok).sum())},
        "realism_baselines": realism["realism_baselines"],
        "probes": _probes(model, st.ref, ref_tab, h.real, h.table, seed),
        "sex_swap": _sex_swap(model, h.real, h.table, list(model.genes)),
        "per_condition": [{k: v for k, v in r.items() if not k.startswith("_")} for r in per],
        "genes": len(model.genes), "train_samples": len(train),
    }
    _write_report(result, per, p_real, p_fake, h.keys,
                  Path(out) if out else model_dir / "evaluate", plots, seed)
    return _clean(result)


def _write_report(result: dict[str, Any], per: list[dict[str, Any]], p_real: np.ndarray,
                  p_fake: np.ndarray, keys: np.ndarray, out_dir: Path, plots: bool,
                  seed: int) -> None:
    """OUT/metrics.json, the figures (UMAP, delta scatters) and OUT/report.md."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out_dir / "metrics.json", json.dumps(_clean(result), indent=2) + "\n")
    figures = {}
    if plots:
        from bulkfm.generate.plots import plot_deltas, plot_embedding

        figures["embedding"] = plot_embedding(p_real, p_fake, keys, out_dir / "umap.png", seed)
        figures["deltas"] = plot_deltas([(r["condition"], r["seen"], *r["_delta"]) for r in per],
                                        out_dir / "deltas.png")
    write_text_atomic(out_dir / "report.md", report_markdown(result, figures))


def _nearest_condition(k: str, row: pd.Series, cond: list[str], train_keys: dict[str, int],
                       table: pd.DataFrame, train: list[str]) -> str | None:
    cands = [c for c in train_keys if c != k]
    if not cands:
        return None

    def shared(c: str) -> tuple[int, int]:
        parts = dict(p.split("=", 1) for p in c.split(" | ")) if cond else {}
        return (sum(parts.get(f) == row[f] for f in cond), train_keys[c])

    return max(cands, key=shared)


def _gaussian_baseline(real: np.ndarray, keys: np.ndarray, sums: dict, counts: dict,
                       grand: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = np.empty_like(real)
    for k in set(keys):
        sel = keys == k
        mean = sums[k] / counts[k] if k in counts else grand
        sd = real[sel].std(0, ddof=1) if sel.sum() > 1 else real.std(0)
        out[sel] = np.clip(mean + rng.standard_normal((int(sel.sum()), real.shape[1])) * sd, 0,
                           None)
    return out


def _label_accuracy(pca, ref: np.ndarray, ref_tab: pd.DataFrame, p_real: np.ndarray,
                    p_fake: np.ndarray, held_tab: pd.DataFrame, cond: list[str], seed: int
                    ) -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression

    out: dict[str, Any] = {"fields": {}}
    accs_r, accs_g = [], []
    p_ref = pca.transform(ref)
    for f in cond:
        y = ref_tab[f].to_numpy()
        if len(set(y)) < 2:
            continue
        clf = LogisticRegression(max_iter=2000, C=1.0, random_state=seed).fit(p_ref, y)
        yh = held_tab[f].to_numpy()
        keep = np.isin(yh, clf.classes_)
        if keep.sum() == 0:
            continue
        ar = float((clf.predict(p_real[keep]) == yh[keep]).mean())
        ag = float((clf.predict(p_fake[keep]) == yh[keep]).mean())
        out["fields"][f] = {"real": ar, "generated": ag, "n": int(keep.sum())}
        accs_r.append(ar)
        accs_g.append(ag)
    if accs_r:
        out["real"], out["generated"] = float(np.mean(accs_r)), float(np.mean(accs_g))
        out["ratio"] = out["generated"] / out["real"] if out["real"] > 0 else None
    return out


def _variance_ratio(h: _Held, min_n: int) -> float | None:
    """Median over genes of the within-condition variance generated / real (conditions with
    at least min_n real samples, weighted by them)."""
    real, keys = h.real_ok, h.keys
    vr_real, vr_fake, w = 0.0, 0.0, 0
    for k in set(keys):
        sel = keys == k
        if sel.sum() < min_n:
            continue
        n = int(sel.sum())
        s1, s2, m = h.gen[k]
        vr_real = vr_real + real[sel].var(0, ddof=1) * n
        vr_fake = vr_fake + np.maximum(s2 - s1 ** 2 / m, 0) / (m - 1) * n
        w += n
    if not w:
        return None
    vr_real, vr_fake = vr_real / w, vr_fake / w
    keep = vr_real > 1e-4
    return float(np.median(vr_fake[keep] / vr_real[keep])) if keep.any() else None


def _probes(model: Generator, ref: np.ndarray, ref_tab: pd.DataFrame, real: np.ndarray,
            held_tab: pd.DataFrame, seed: int) -> dict[str, Any]:
    """Balanced accuracy of a linear probe from each latent part to each field (fit on train
    latents, scored on held-out ones), with chance = 1 / classes."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score

    z_tr = model.encode(torch.from_numpy(ref))
    z_te = model.encode(torch.from_numpy(real))
    out: dict[str, Any] = {}
    for f in model.vocab.fields:
        if f in NUMERIC:
            continue
        y, yh = ref_tab[f].to_numpy(), held_tab[f].to_numpy()
        if len(set(y)) < 2:
            continue
        keep = np.isin(yh, np.unique(y))
        if len(set(yh[keep])) < 2:
            continue
        out[f] = {"group": group_of(f), "chance": 1 / len(set(yh[keep]))}
        for g in model.active:
            clf = LogisticRegression(max_iter=2000, random_state=seed).fit(z_tr[g].numpy(), y)
            out[f][g] = float(balanced_accuracy_score(yh[keep], clf.predict(z_te[g].numpy()[keep])))
    return out


def _sex_swap(model: Generator, real: np.ndarray, held_tab: pd.DataFrame, genes: list[str]
              ) -> dict[str, Any] | None:
    vals = model.vocab.values.get("sex", [])
    if len(vals) != 2 or "sex" not in held_tab.columns:
        return None
    out: dict[str, Any] = {}
    for src, dst in (vals, vals[::-1]):
        sel = (held_tab["sex"] == src).to_numpy()
        if not sel.any():
            continue
        old = held_tab.loc[sel]
        new = old.copy()
        new["sex"] = dst
        y = model.counterfactual(torch.from_numpy(real[sel]), _codes(model, old),
                                 _codes(model, new), {"bio"}).numpy()
        d = (y - real[sel]).mean(0)
        rec = {"n": int(sel.sum()), "genes_moved_gt_0.5": int((np.abs(d) > 0.5).sum()),
               "top_moved": [genes[i] for i in np.argsort(-np.abs(d))[:8]]}
        for sym in ("XIST", "RPS4Y1", "DDX3Y", "KDM5D"):
            i = gene_index(genes, sym)
            if i is not None:
                rec[f"delta_{sym}"] = float(d[i])
        out[f"{src}->{dst}"] = rec
    return out


def _clean(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    if isinstance(x, float | np.floating):
        return None if math.isnan(float(x)) else round(float(x), 4)
    if isinstance(x, np.integer):
        return int(x)
    return x


def report_markdown(r: dict[str, Any], figures: dict[str, Path | None]) -> str:
    def f(v: Any) -> str:
        return "—" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))

    lines = ["# Generator evaluation (held-out conditions)", "",
             "| conditions | n | generator r | baseline r | generator r top-50 | baseline r "
             "top-50 | nearest r | generator R² | baseline R² | grand-mean R² |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, base in (("seen", "train_mean"), ("unseen", "additive")):
        s = r.get(name)
        if s:
            lines.append(f"| {name} (baseline: {base}) | {s['n']} | {f(s['generator_r'])} | "
                         f"{f(s[f'{base}_r'])} | {f(s['generator_r_top50'])} | "
                         f"{f(s[f'{base}_r_top50'])} | {f(s['nearest_r'])} | "
                         f"{f(s['generator_r2'])} | {f(s[f'{base}_r2'])} | "
                         f"{f(s['grand_mean_r2'])} |")
    g = r["realism_baselines"]["gaussian_noise"]
    t = r["realism_baselines"].get("train_samples", {})
    lines += ["", "| realism (PCA of half the real training samples) | generator | mean + Gaussian noise | "
              "real training samples |", "|---|---:|---:|---:|"]
    lines += [f"| {name} | {f(r[k])} | {f(g[k])} | {f(t.get(k))} |"
              for name, k in (("RF AUC real vs generated", "auc_real_vs_generated"),
                              ("energy distance", "energy_distance"),
                              ("kNN precision", "knn_precision"), ("kNN recall", "knn_recall"))]
    lines += [f"| label accuracy generated / real | "
              f"{f(r['label_accuracy_generated_over_real'])} | | |",
              f"| variance ratio (median gene) | {f(r['variance_ratio_median'])} | | |", "",
              "Per condition:", "", "| condition | seen | n | gen r | base r | gen r50 | base r50 |",
              "|---|---|---:|---:|---:|---:|---:|"]
    for c in r["per_condition"]:
        lines.append(f"| {c['condition']} | {c['seen']} | {c['n_real']} | {f(c['generator_r'])} "
                     f"| {f(c['baseline_r'])} | {f(c['generator_r_top50'])} | "
                     f"{f(c['baseline_r_top50'])} |")
    if r.get("probes"):
        lines += ["", "Linear probes (balanced accuracy, held-out) from each latent part:", "",
                  "| field | group | chance | bio | pert | tech |", "|---|---|---:|---:|---:|---:|"]
        for fld, p in r["probes"].items():
            lines.append(f"| {fld} | {p['group']} | {f(p['chance'])} | {f(p.get('bio'))} | "
                         f"{f(p.get('pert'))} | {f(p.get('tech'))} |")
    if r.get("sex_swap"):
        lines += ["", "Sex swap counterfactual: " + json.dumps(r["sex_swap"])]
    for name, path in figures.items():
        if path:
            lines += ["", f"![{name}]({Path(path).name})"]
    return "\n".join(lines) + "\n"
