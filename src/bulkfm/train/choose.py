"""Settings ``bulkfm train`` chooses from the matrix: training and validation samples only.

Stage 1's corruption level and regularisation. The autoencoder is a denoising AE: the fraction
of genes masked in its *training* input is its main regulariser, and which level suits a matrix
depends on how many samples it has and how alike they are (a few hundred TCGA samples of six
cohorts vs 69 people of one cell type). So with ``ae_mask_choices`` of two or more values,
stage 1 is trained once per value (same initial weights, same batches, early stopping as usual)
in ``DIR/choices/ae_mask_<f>/``; then, at the chosen mask, once per ``ae_regularisation_choices``
entry (AE dropout and/or weight decay; ``{}`` = the run's own settings, i.e. the mask winner) in
``DIR/choices/ae_mask_<f>_<entry>/``. Each time the candidate whose reconstruction of *masked*
genes of the validation samples is best (fixed masks at the run's ``mask_fraction``, the
quantity the model is scored on) wins, and the last winner becomes stage 1's result
(``DIR/ae``). ``DIR/choices.json`` holds every candidate's validation figure and both choices;
the log says ``chose ...``. The test split is never read. ``--init`` keeps the pretrained AE's
training, so no choice is made there. Measured: docs/model.md section 6.
"""

from __future__ import annotations

import copy
import csv
import json
import logging
import shutil
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bulkfm.common.atomic import atomic_path, write_text_atomic
from bulkfm.model.checkpoint import is_complete
from bulkfm.model.sample_embedding import fit_embedding
from bulkfm.train.loop import MetricsLog, Stage, run_stage, validation_loss

log = logging.getLogger(__name__)

CHOICES = "choices.json"


def masked_ae_loss(module: nn.Module, x: torch.Tensor, mask: torch.Tensor, x_in: torch.Tensor,
                   mask_value: float = -10.0) -> torch.Tensor:
    """MSE of the AE's reconstruction on the masked genes only (what the model is scored on)."""
    recon, _ = module(x_in)
    keep = mask & (x != mask_value)
    return F.mse_loss(recon.float()[keep], x[keep])


def regularisation_name(reg: dict[str, float]) -> str:
    """``{}`` -> "own", ``{"dropout": 0.3}`` -> "dropout_0.3" (a folder and a JSON key)."""
    return "+".join(f"{k}_{v:g}" for k, v in sorted(reg.items())) or "own"


def _candidate_dir(out: Path, fraction: float, reg: dict[str, float] | None = None) -> Path:
    suffix = f"_{regularisation_name(reg)}" if reg else ""
    return out / "choices" / f"ae_mask_{fraction:g}{suffix}"


def _copy_metrics(src: Path, metrics: MetricsLog) -> None:
    """The chosen candidate's stage-1 rows into DIR/metrics.csv (curves, step counts)."""
    if not src.exists():
        return
    metrics.truncate("ae", 0)
    with open(src, newline="") as fh:
        for row in csv.DictReader(fh):
            metrics.write(**row)


def _set_dropout(module: nn.Module, p: float) -> None:
    for m in module.modules():
        if isinstance(m, nn.Dropout):
            m.p = p


def _train_candidate(stage: Stage, prep, tcfg, d, stop, bf16: bool, progress: bool,
                     start: dict, where: Path, fraction: float, reg: dict[str, float]) -> float:
    """Stage 1 from ``start`` at training mask ``fraction`` with ``reg`` (dropout / weight
    decay overrides) in ``where`` (skipped when finished there); its validation masked MSE."""
    stage.module.load_state_dict(start)
    cfg = replace(stage.model_cfg, dropout=reg.get("dropout", stage.model_cfg.dropout))
    _set_dropout(stage.module, cfg.dropout)
    if d.main:
        where.mkdir(parents=True, exist_ok=True)
    cand = Stage(stage.name, stage.kind, stage.module, cfg, stage.cfg, stage.loss,
                 mask_fraction=fraction)
    module = run_stage(cand, prep.data, prep.train_rows, prep.val_rows,
                       replace(tcfg, weight_decay=reg.get("weight_decay", tcfg.weight_decay)),
                       where, d, prep.genes, stop, MetricsLog(where / "metrics.csv", d.main),
                       bf16, progress=progress)
    score = validation_loss(
        module, lambda m, x, k, xi: masked_ae_loss(m, x, k, xi, cfg.mask_value),
        prep.data, prep.val_rows, tcfg, stage.cfg.batch_size, d.device, bf16, cfg.mask_value)
    _set_dropout(stage.module, stage.model_cfg.dropout)
    return score


def _record(chosen, candidates: list, scores: dict[str, float], tcfg, prep, **extra) -> dict:
    return {"chosen": chosen, "candidates": candidates, "validation_masked_mse": scores,
            "criterion": f"masked-gene MSE of the AE on the validation split, fixed "
                         f"{tcfg.mask_fraction:g} masks",
            "n_val_samples": int(len(prep.val_rows)), **extra}


def choose_ae_stage(stage: Stage, prep, tcfg, out: Path, d, stop, metrics: MetricsLog,
                    bf16: bool, progress: bool) -> dict | None:
    """Stage 1 trained once per ``ae_mask_choices`` value, then once per
    ``ae_regularisation_choices`` entry at the chosen mask; the best by validation becomes
    ``DIR/ae`` (module docstring). Returns the choices.json record, or None when no choice is
    made (fewer than 2 candidates, no validation samples, ``--init``)."""
    masks = sorted({float(v) for v in tcfg.ae_mask_choices})
    regs = tcfg.ae_regularisations()
    done = out / CHOICES
    if is_complete(out / stage.name):
        return json.loads(done.read_text()) if done.exists() else None
    if (len(masks) < 2 and len(regs) < 2) or len(prep.val_rows) == 0 or prep.init is not None:
        return None
    start = copy.deepcopy(stage.module.state_dict())  # every candidate from the same weights
    train = partial(_train_candidate, stage, prep, tcfg, d, stop, bf16, progress, start)
    record: dict = {}
    fraction, reg = tcfg.mask_fraction, {}
    if len(masks) >= 2:
        scores = {f"{f:g}": train(_candidate_dir(out, f), f, {}) for f in masks}
        fraction = min(masks, key=lambda v: (scores[f"{v:g}"], v))  # ties: lighter corruption
        record["ae_mask_fraction"] = _record(fraction, masks, scores, tcfg, prep)
        log.info("ae: chose training mask fraction %g of %s (validation masked-gene MSE %s, "
                 "fixed %g masks)", fraction, masks, _rounded(scores), tcfg.mask_fraction)
    if len(regs) >= 2:
        scores = {regularisation_name(r): train(_candidate_dir(out, fraction, r), fraction, r)
                  for r in regs}
        reg = min(regs, key=lambda r: (scores[regularisation_name(r)], regs.index(r)))
        record["ae_regularisation"] = _record(reg, regs, scores, tcfg, prep,
                                              mask_fraction=fraction)
        log.info("ae: chose regularisation %s of %s at mask %g (validation masked-gene MSE %s)",
                 regularisation_name(reg), [regularisation_name(r) for r in regs], fraction,
                 _rounded(scores))
    best = _candidate_dir(out, fraction, reg)
    if d.main:  # the record first: a rerun after a stop in between copies again
        write_text_atomic(done, json.dumps(record, indent=2) + "\n")
        _copy_metrics(best / "metrics.csv", metrics)
        with atomic_path(out / stage.name) as tmp:
            shutil.copytree(best / stage.name, tmp)
    d.barrier()
    return record


def _rounded(scores: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 4) for k, v in scores.items()}


# --------------------------------------------------------------------------- sample embedding
# Candidate block weights of the sample embedding (bulkfm.model.sample_embedding), in order of
# preference for ties; the first is the one used when no labels are given. Every candidate
# holds both of the model's inputs, the PCA of the raw values and the AE latent, so the
# embedding keeps what its input had by construction; the choice is whether the pooled hidden
# state adds to them. (Candidates that drop an input were tried, stop 22: on 55-290 labelled
# samples a grouped CV picked them by a few samples' margin, e.g. the pooled block alone on
# one Pickrell seed, 0.64 held-out probe vs 0.93 for [PCA | AE]; docs/model.md section 2.)
EMBEDDING_CANDIDATES: tuple[dict[str, float], ...] = (
    {"pca": 1.0, "ae": 1.0, "pooled": 0.0},
    {"pca": 1.0, "ae": 1.0, "pooled": 1.0},
)
# Another candidate replaces the first only when its grouped CV gets at least this many more
# samples right (mean over CV_REPEATS partitions): a one-sample difference is noise at a few
# dozen labelled samples.
SWITCH_MARGIN = 2
# Fold partitions the CV is repeated over: one partition of 55-290 samples decided by 2
# samples at stop 22, and which samples share a fold moves such a margin as much as the blocks.
CV_REPEATS = 5


def _blocks(model, readout, data, rows: np.ndarray, batch_size: int, device
            ) -> dict[str, np.ndarray | None]:
    from bulkfm.train.embed import iter_embeddings

    got: dict[str, list[np.ndarray]] = {"pca": [], "ae": [], "pooled": []}
    for _, _, parts, _ in iter_embeddings(model, data, rows, batch_size, torch.device(device),
                                          False, readout):
        for b, x in parts.items():
            if x is not None:
                got[b].append(x)
    return {b: np.concatenate(v) if v else None for b, v in got.items()}


def _labelled(labels: str | None, samples: list[str],
              matrix_samples: list[str]) -> tuple[np.ndarray, np.ndarray] | None:
    """(label, group) per sample of ``samples`` (NaN where unlabelled), or None without a
    labels file."""
    if not labels:
        return None
    from bulkfm.evaluate.run import read_labels

    table = read_labels(labels, matrix_samples).set_index("sample_id")
    lab = table["label"].reindex(samples).to_numpy(dtype=object)
    grp = table["group"].reindex(samples).to_numpy(dtype=object)
    return lab, grp


def fit_sample_embedding(model, readout, data, train_rows: np.ndarray, val_rows: np.ndarray, *,
                         labels: str | None, batch_size: int, device, seed: int):
    """The sample embedding's definition: training-split statistics per block; the blocks
    chosen by grouped CV over the labelled training + validation samples (_choose_weights)."""
    rows = np.concatenate([np.asarray(train_rows), np.asarray(val_rows)]).astype(np.int64)
    is_train = np.arange(len(rows)) < len(train_rows)
    parts = _blocks(model, readout, data, rows, batch_size, device)
    available = [c for c in EMBEDDING_CANDIDATES
                 if all(parts[b] is not None for b, w in c.items() if w > 0)]
    train_parts = {b: x[is_train] if x is not None else None for b, x in parts.items()}
    weights, report = _choose_weights(available, parts, train_parts,
                                      _labelled(labels, [str(data.samples[i]) for i in rows],
                                                [str(s) for s in data.samples]),
                                      seed)
    emb = fit_embedding(train_parts, weights)
    emb.report.update(report)
    log.info("sample embedding: chose %s, columns per block %s (%s)", weights, emb.dims,
             report["how"])
    return emb


def _choose_weights(candidates: list[dict[str, float]], parts: dict, train_parts: dict,
                    labelled, seed: int
                    ) -> tuple[dict[str, float], dict]:
    """The candidate with the best probe accuracy in grouped 5-fold CV over the labelled
    training + validation samples, averaged over CV_REPEATS fold partitions (ties: the earlier
    candidate); the first without labels."""
    from bulkfm.evaluate.probes import probe_cv

    first = candidates[0]
    if labelled is None:
        return first, {"how": "no labels given: the default blocks", "candidates": candidates}
    lab, grp = labelled
    ok = np.array([v is not None and v == v and v != "" for v in lab])
    if ok.sum() < 10 or len(set(lab[ok])) < 2 or len(candidates) < 2:
        return first, {"how": "too few labelled training/validation samples: the default "
                              "blocks", "candidates": candidates}
    y, g = lab[ok].astype(str), grp[ok].astype(str)
    per_repeat = []  # [candidate][repeat]: every candidate on the same fold partitions
    for c in candidates:
        x = fit_embedding(train_parts, c)(parts)[ok]
        per_repeat.append([probe_cv(x, y, g, folds=5, seed=seed + r)["accuracy"]
                           for r in range(CV_REPEATS)])
    scores = [float(np.mean(a)) for a in per_repeat]
    n = int(ok.sum())
    best = int(np.argmax(scores))
    if round((scores[best] - scores[0]) * n) < SWITCH_MARGIN:
        best = 0
    return candidates[best], {
        "how": f"grouped 5-fold CV probe accuracy over {n} labelled training + validation "
               f"samples, mean of {CV_REPEATS} fold partitions (test split not read): "
               f"{[round(s, 4) for s in scores]}; the first candidate unless another gets "
               f">= {SWITCH_MARGIN} more samples right",
        "candidates": candidates, "cv_accuracy": [round(s, 4) for s in scores],
        "cv_accuracy_per_partition": [[round(a, 4) for a in r] for r in per_repeat]}
