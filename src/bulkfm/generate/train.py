"""``bulkfm train-generator``: streamed, resumable training of the conditional generator.

    OUT/
      split.tsv            sample_id, group, split (train | heldout), reason
      metrics.csv          step, loss, nll, kl, adv, mse_std, lr, samples_per_s
      checkpoints/step-*   resumable checkpoints (bulkfm.model.checkpoint format + train_state)
      model/               the final model: weights.safetensors, config.json, genes.txt

Held out before anything is fitted: whole studies (``study`` column; with fewer than three
studies the ``group``/``participant`` column, else single samples), and ``holdout_unseen``
biological combinations (e.g. disease x sample type) whose every value is still seen in
other combinations, so that the evaluation has conditions never seen together. Genes (top
``max_genes`` by variance), per-gene moments and the vocabulary come from training rows only.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml
from safetensors.torch import load_file
from tqdm import tqdm

from bulkfm.common.atomic import write_text_atomic
from bulkfm.common.settings import JOB_KEYS, check_keys
from bulkfm.generate.conditions import (STUDY, UNKNOWN, ConditionError, Vocabulary,
                                        attach_study, check_samples, condition_fields, condition_key,
                                        read_metadata)
from bulkfm.generate.model import PARTS, Generator, GeneratorConfig
from bulkfm.matrix.store import ExpressionMatrix, iter_row_batches, open_matrix
from bulkfm.model.checkpoint import (CheckpointError, is_complete, latest_checkpoint,
                                     load_train_state, prune_checkpoints, read_genes, resolve,
                                     save_checkpoint, verify)
from bulkfm.train.data import SubsetMatrix, gene_moments, select_genes, step_generator
from bulkfm.train.split import make_split

log = logging.getLogger(__name__)
KIND = "generator"
# Keys of the workflow's generate: section that steer the workflow (generate.smk), not training.
WORKFLOW_KEYS = JOB_KEYS["generate"]
METRICS = ("step", "loss", "nll", "kl", "adv", "aux", "mse_std", "lr", "samples_per_s")


@dataclass(frozen=True)
class GenTrainConfig:
    model: GeneratorConfig = field(default_factory=GeneratorConfig)
    steps: int = 3000
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    kl_warmup: float = 0.2  # fraction of steps over which beta ramps 0 -> beta
    max_genes: int = 2000
    holdout_fraction: float = 0.2
    holdout_unseen: int = 1
    min_unseen_samples: int = 5
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    seed: int = 0
    # torch CPU threads; 0 = torch default. The model is small: on 2 shared cores one thread
    # ran 35x faster than two (thread contention), so 1 is the default.
    threads: int = 1

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> GenTrainConfig:
        d = dict(d or {})
        if "generate" in d and isinstance(d["generate"], dict):  # a workflow config
            d = dict(d["generate"])
        d = {k: v for k, v in d.items() if k not in WORKFLOW_KEYS}
        check_keys(d, {f.name for f in fields(cls)}, "generate")
        model = GeneratorConfig.from_dict(d.pop("model", {}) or {})
        return cls(model=model, **d)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_config(path: str | None, text: str | None = None) -> GenTrainConfig:
    if text:
        return GenTrainConfig.from_dict(json.loads(text))
    if path:
        return GenTrainConfig.from_dict(yaml.safe_load(Path(path).read_text()))
    return GenTrainConfig()


# --------------------------------------------------------------------------- hold-out
def holdout_groups(meta: pd.DataFrame) -> tuple[list[str], str]:
    """Group per sample for the held-out split: study, else group/participant, else sample."""
    if STUDY in meta.columns and meta[STUDY].replace(UNKNOWN, np.nan).nunique() >= 3:
        return [s if s != UNKNOWN else f"__sample__{i}" for i, s in meta[STUDY].items()], STUDY
    for col in ("group", "participant"):
        if col in meta.columns:
            log.info("fewer than 3 studies: holding out whole %ss instead", col)
            return meta[col].astype(str).tolist(), col
    log.warning("no study/group/participant column: holding out single samples")
    return list(meta.index), "sample"


def choose_unseen(meta: pd.DataFrame, cond: list[str], k: int, min_n: int, seed: int
                  ) -> list[str]:
    """Up to k condition keys whose every field value also occurs in other conditions."""
    if k <= 0 or len(cond) < 2:
        return []
    keys = meta[cond].apply(lambda r: condition_key(r, cond), axis=1)
    sizes = keys.value_counts()
    rng = np.random.default_rng(seed)
    cands = []
    for key, n in sizes.items():
        if n < min_n:
            continue
        rows = meta[keys == key].iloc[0]
        others = meta[keys != key]
        if any(rows[f] == UNKNOWN for f in cond):
            continue
        if all((others[f] == rows[f]).sum() >= max(2, min_n // 2) for f in cond):
            cands.append(str(key))
    # The smallest qualifying combinations: they cost the training set least. Ties: seeded.
    order = rng.permutation(len(cands))
    cands = sorted((cands[i] for i in order), key=lambda c: int(sizes[c]))
    return cands[:k]


def make_holdout(meta: pd.DataFrame, cfg: GenTrainConfig) -> pd.DataFrame:
    groups, kind = holdout_groups(meta)
    cond = [c for c in meta.columns if c in _condition_candidates(meta)]
    unseen = choose_unseen(meta, cond, cfg.holdout_unseen, cfg.min_unseen_samples, cfg.seed)
    keys = (meta[cond].apply(lambda r: condition_key(r, cond), axis=1) if cond
            else pd.Series("", index=meta.index))
    table = pd.DataFrame({"sample_id": meta.index, "group": groups, "split": "train",
                          "reason": ""})
    is_unseen = keys.isin(unseen).to_numpy()
    # Whole groups (studies, participants) of those samples go too: a participant's tumour
    # in training would leak the participant's normal tissue that is held out.
    with_unseen = table["group"].isin(set(table.loc[is_unseen, "group"])).to_numpy()
    table.loc[with_unseen, ["split", "reason"]] = ["heldout", f"{kind}_of_unseen"]
    table.loc[is_unseen, ["split", "reason"]] = ["heldout", "unseen_combination"]
    rest = table[~with_unseen]
    if len(rest) >= 2 and cfg.holdout_fraction > 0:
        s = make_split(rest["sample_id"].tolist(), rest["group"].tolist(), val_fraction=0.0,
                       test_fraction=cfg.holdout_fraction, seed=cfg.seed)
        held = set(s.loc[s["split"] == "test", "sample_id"])
        sel = table["sample_id"].isin(held)
        table.loc[sel, ["split", "reason"]] = ["heldout", f"heldout_{kind}"]
    log.info("held out: %d by %s, %d in unseen combination(s) %s; %d train",
             int((table.reason == f"heldout_{kind}").sum()), kind, int(is_unseen.sum()), unseen,
             int((table.split == "train").sum()))
    return table


def _condition_candidates(meta: pd.DataFrame) -> list[str]:
    vocab = Vocabulary.fit(meta, {})
    return condition_fields(vocab)


# --------------------------------------------------------------------------- data
def codes_tensors(vocab: Vocabulary, table: pd.DataFrame) -> dict[str, torch.Tensor]:
    return {f: torch.from_numpy(v) for f, v in vocab.encode(table).items()}


def _fingerprint(cfg: GenTrainConfig, matrix: str, metadata: str) -> str:
    blob = json.dumps([cfg.to_dict(), str(Path(matrix).resolve()),
                       str(Path(metadata).resolve())], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _log_metrics(path: Path, row: dict[str, Any]) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as fh:
        w = csv.DictWriter(fh, METRICS)
        if new:
            w.writeheader()
        w.writerow({k: row.get(k, "") for k in METRICS})


def _truncate_metrics(path: Path, step: int) -> None:
    if not path.exists():
        return
    with open(path, newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if int(r["step"]) <= step]
    with open(path.with_suffix(".tmp"), "w", newline="") as fh:
        w = csv.DictWriter(fh, METRICS)
        w.writeheader()
        w.writerows(rows)
    os.replace(path.with_suffix(".tmp"), path)


@dataclass
class _Run:
    """What one training run needs, built from the training rows only (_prepare)."""

    model: Generator
    mcfg: GeneratorConfig
    data: SubsetMatrix
    rows: np.ndarray  # [N] matrix rows of the training samples
    codes: dict[str, torch.Tensor]  # {field: [N] | [N, 2]}, aligned with rows
    genes: list[str]
    meta_json: dict[str, Any]


def _already_done(out: Path, cfg: GenTrainConfig, matrix_path: str, metadata_path: str,
                  resume: bool) -> bool:
    """Refuse a directory trained on another config/input; True when its model is complete."""
    fp = _fingerprint(cfg, matrix_path, metadata_path)
    fp_file = out / "fingerprint.json"
    if fp_file.exists() and resume and json.loads(fp_file.read_text())["fingerprint"] != fp:
        raise ConditionError(f"{out} was trained with another config or input; give a new --out "
                             "or --no-resume to start over")
    if is_complete(out / "model") and resume and fp_file.exists():
        return True
    write_text_atomic(fp_file, json.dumps({"fingerprint": fp}) + "\n")
    return False


def _split_samples(matrix: ExpressionMatrix, metadata_path: str, out: Path,
                   cfg: GenTrainConfig) -> tuple[pd.DataFrame, dict, list[str]]:
    """-> (metadata, labels, training sample IDs); writes OUT/split.tsv atomically."""
    meta, labels = read_metadata(metadata_path)
    check_samples(meta, matrix.samples, str(metadata_path))
    meta = attach_study(meta, matrix)
    no_meta = [s for s in matrix.samples if s not in meta.index]
    if no_meta:
        log.warning("%d matrix sample(s) have no metadata row and are not used (e.g. %s)",
                    len(no_meta), ", ".join(no_meta[:3]))
    split = make_holdout(meta, cfg)
    with open(out / "split.tsv.tmp", "w") as fh:
        split.to_csv(fh, sep="\t", index=False)
    os.replace(out / "split.tsv.tmp", out / "split.tsv")
    train_ids = split.loc[split.split == "train", "sample_id"].tolist()
    if len(train_ids) < 4:
        raise ConditionError(f"{metadata_path}: only {len(train_ids)} training sample(s) after "
                             "the hold-out; need at least 4")
    return meta, labels, train_ids


def _active_latent(cfg: GenTrainConfig, vocab: Vocabulary, train_meta: pd.DataFrame,
                   metadata_path: str) -> dict[str, int]:
    """A part whose group has no field that varies in training would be an unlabelled free
    latent: it would absorb the biological signal that its prior cannot see. Switch it off."""
    latent = {g: (k if any(_varies(vocab, train_meta, f) for f in vocab.group_fields(g)) else 0)
              for g, k in cfg.model.latent.items()}
    off = [g for g, k in latent.items() if k == 0]
    if off:
        log.info("latent part(s) %s off: no field of their group varies in the training data",
                 off)
    if not any(latent.values()):
        raise ConditionError(f"{metadata_path}: no field varies across the training samples; "
                             "the generator needs at least one condition with two values")
    return latent


def _prepare(matrix_path: str, metadata_path: str, out: Path, cfg: GenTrainConfig,
             progress: bool) -> _Run:
    matrix = open_matrix(matrix_path)
    meta, labels, train_ids = _split_samples(matrix, metadata_path, out, cfg)
    pos = {s: i for i, s in enumerate(matrix.samples)}
    train_rows = np.array([pos[s] for s in train_ids], dtype=np.int64)
    train_meta = meta.loc[train_ids]
    vocab = Vocabulary.fit(train_meta, labels)
    moments = gene_moments(matrix, train_rows, progress=progress)
    cols = select_genes(moments, cfg.max_genes)
    genes = [matrix.genes[i] for i in cols]
    latent = _active_latent(cfg, vocab, train_meta, metadata_path)
    mcfg = GeneratorConfig.from_dict({**cfg.model.to_dict(), "n_genes": len(genes),
                                      "latent": latent})
    torch.manual_seed(cfg.seed)
    model = Generator(mcfg, vocab, torch.tensor(moments.mean[cols]),
                      torch.tensor(moments.std[cols]))
    return _Run(model, mcfg, SubsetMatrix(matrix, cols, genes), train_rows,
                codes_tensors(vocab, train_meta), genes,
                {"vocab": vocab.to_dict(), "train": cfg.to_dict()})


def _resume_step(run: _Run, opt: torch.optim.Optimizer, out: Path, resume: bool) -> int:
    """Load the last checkpoint (weights + optimizer) when resuming -> the step to start at;
    metrics.csv is cut back to that step."""
    last = latest_checkpoint(out / "checkpoints") if resume else None
    step = 0
    if last is not None:
        run.model.load_state_dict(load_file(str(last / "weights.safetensors")), strict=False)
        state = load_train_state(last)
        opt.load_state_dict(state["optimizer"])
        step = int(state["step"])
        log.info("resuming from %s (step %d)", last, step)
    _truncate_metrics(out / "metrics.csv", step)
    if step == 0:
        (out / "metrics.csv").unlink(missing_ok=True)
    return step


def _schedule(cfg: GenTrainConfig, step: int) -> tuple[float, float]:
    """-> (KL / adversary ramp in [0, 1], learning rate) at ``step``: linear warm-up, cosine."""
    warm = max(1, int(cfg.kl_warmup * cfg.steps))
    lr = cfg.lr * min(1.0, (step + 1) / 50) * (0.1 + 0.9 * 0.5 * (1 + math.cos(
        math.pi * step / cfg.steps)))
    return min(1.0, (step + 1) / warm), lr


def _train_step(run: _Run, opt: torch.optim.Optimizer, cfg: GenTrainConfig, step: int,
                bs: int) -> tuple[float, float, dict[str, float]]:
    """One optimizer step on batch ``step`` (deterministic in seed and step) -> loss, lr, parts."""
    n = len(run.rows)
    epoch, k = divmod(step, max(1, n // bs))
    perm = np.random.default_rng([cfg.seed, epoch]).permutation(n)
    sel = np.sort(perm[k * bs:(k + 1) * bs])
    x = torch.from_numpy(run.data.rows(run.rows[sel]))  # [B, G] streamed from the store
    c = {f: v[torch.from_numpy(sel)] for f, v in run.codes.items()}
    gen = step_generator(cfg.seed, step)
    # Dropout draws from a seed of the step: a resumed run draws what an uninterrupted one would.
    torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
    ramp, lr = _schedule(cfg, step)
    for group in opt.param_groups:
        group["lr"] = lr
    loss, parts = run.model.loss(x, c, beta=run.mcfg.beta * ramp, adv_scale=ramp, gen=gen)
    if not torch.isfinite(loss.detach()):
        raise FloatingPointError(f"loss is {loss.item()} at step {step}; lower lr")
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(run.model.parameters(), 5.0)
    opt.step()
    return float(loss.detach()), lr, parts


def _train_loop(run: _Run, opt: torch.optim.Optimizer, cfg: GenTrainConfig, out: Path,
                step: int, progress: bool) -> None:
    bs = min(cfg.batch_size, len(run.rows))
    bar = tqdm(total=cfg.steps, initial=step, desc="train-generator", disable=not progress,
               unit="step")
    run.model.train()
    t0, seen0 = time.perf_counter(), step
    while step < cfg.steps:
        loss, lr, parts = _train_step(run, opt, cfg, step, bs)
        step += 1
        bar.update(1)
        if step % 50 == 0 or step == cfg.steps:
            dt = time.perf_counter() - t0
            _log_metrics(out / "metrics.csv", {"step": step, "loss": f"{loss:.5g}",
                                               **{k: f"{v:.5g}" for k, v in parts.items()},
                                               "lr": f"{lr:.3g}",
                                               "samples_per_s": f"{(step - seen0) * bs / dt:.1f}"})
            bar.set_postfix(loss=f"{loss:.1f}", mse=f"{parts['mse_std']:.3f}")
        if step % cfg.checkpoint_every == 0 and step < cfg.steps:
            save_checkpoint(out / "checkpoints" / f"step-{step:08d}", run.model, run.mcfg,
                            run.genes, kind=KIND,
                            train_state={"optimizer": opt.state_dict(), "step": step},
                            meta=run.meta_json)
            prune_checkpoints(out / "checkpoints", cfg.keep_checkpoints)
    bar.close()


def train_generator(matrix_path: str, metadata_path: str, out: str | os.PathLike[str],
                    cfg: GenTrainConfig, *, progress: bool = True, resume: bool = True
                    ) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if _already_done(out, cfg, matrix_path, metadata_path, resume):
        log.info("%s: model already trained; nothing to do", out)
        return out / "model"
    run = _prepare(matrix_path, metadata_path, out, cfg, progress)
    opt = torch.optim.AdamW(run.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    step = _resume_step(run, opt, out, resume)
    _train_loop(run, opt, cfg, out, step, progress)
    model = run.model.eval()
    fit_priors(model, run.data, run.rows, run.codes, min(cfg.batch_size, len(run.rows)))
    path = save_checkpoint(out / "model", model, run.mcfg, run.genes, kind=KIND,
                           meta={**run.meta_json, "agg_keys": model.agg_keys,
                                 "cal_keys": model.cal_keys})
    log.info("generator written to %s (%d genes, %d training samples)", path, len(run.genes),
             len(run.rows))
    return path


def _varies(vocab: Vocabulary, meta: pd.DataFrame, f: str) -> bool:
    if f in vocab.numeric:
        return pd.to_numeric(meta[f], errors="coerce").nunique() > 1
    return len(vocab.values.get(f, [])) > 1


@torch.no_grad()
def fit_priors(model: Generator, data: ExpressionMatrix, rows: np.ndarray,
               codes: dict[str, torch.Tensor], batch: int) -> None:
    mus: dict[str, list[np.ndarray]] = {g: [] for g in model.active}
    lvs: dict[str, list[np.ndarray]] = {g: [] for g in model.active}
    for _, x in iter_row_batches(data, batch, rows):
        post = model.encoder(model.scaler(torch.from_numpy(x)))
        for g in model.active:
            mus[g].append(post[g][0].numpy())
            lvs[g].append(post[g][1].numpy())
    mu_all = {g: np.concatenate(v) for g, v in mus.items()}
    lv_all = {g: np.concatenate(v) for g, v in lvs.items()}
    model.fit_aggregate_priors(mu_all, lv_all, codes)
    # Second pass: standardized sums per full condition (calibration) and per field value
    # (counterfactual gate), streamed.
    keys = [model.full_key(codes, i) for i in range(len(rows))]
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    first: dict[str, dict[str, torch.Tensor]] = {}
    g = model.cfg.n_genes
    fx = {f: (np.zeros((model.vocab.size(f), g)), np.zeros((model.vocab.size(f), g)),
              np.zeros(model.vocab.size(f))) for f in model.fx_fields}
    start = 0
    for _, x in iter_row_batches(data, batch, rows):
        xs = model.scaler(torch.from_numpy(x)).double().numpy()  # [b, G]
        for j, row in enumerate(xs):
            i = start + j
            k = keys[i]
            if k not in sums:
                sums[k], counts[k] = np.zeros(g), 0
                first[k] = {f: v[i:i + 1] for f, v in codes.items()}
            sums[k] += row
            counts[k] += 1
            for f, (s_, q_, n_) in fx.items():
                c = int(codes[f][i])
                s_[c] += row
                q_[c] += row ** 2
                n_[c] += 1
        start += len(xs)
    model.fit_calibration(sums, counts, first, keys,
                          np.concatenate([mu_all[g] for g in model.active], 1),
                          np.concatenate([lv_all[g] for g in model.active], 1))
    model.fit_field_effects({f: v[0] for f, v in fx.items()}, {f: v[1] for f, v in fx.items()},
                            {f: v[2] for f, v in fx.items()})


def load_generator(path: str | os.PathLike[str]) -> Generator:
    """A trained generator from OUT (or OUT/model), eval mode, with ``.genes``."""
    p = Path(path)
    ckpt = p / "model" if is_complete(p / "model") else resolve(p)
    verify(ckpt)
    meta = json.loads((ckpt / "config.json").read_text())
    if meta.get("kind") != KIND:
        raise CheckpointError(f"{ckpt}: not a generator checkpoint (kind {meta.get('kind')!r}); "
                              "give the output directory of `bulkfm train-generator`")
    if "tech_scale" not in meta["model"]:
        raise CheckpointError(f"{ckpt}: written by an older bulkfm (a decoder without the "
                              "technical gain); train it again with `bulkfm train-generator "
                              "--no-resume`")
    cfg = GeneratorConfig.from_dict(meta["model"])
    model = Generator(cfg, Vocabulary.from_dict(meta["vocab"]))
    state = load_file(str(ckpt / "weights.safetensors"))
    missing = [k for k in ("cal_bias", "post_mu", *(f"fx_mean_{f}" for f in model.fx_fields))
               if k not in state]
    if missing:
        raise CheckpointError(f"{ckpt}: written by an older bulkfm (no {', '.join(missing[:3])}: "
                              "the calibration, sampler and counterfactual tables); train it "
                              "again with `bulkfm train-generator --no-resume`")
    for g in PARTS:  # aggregate-prior tables are sized by the data
        setattr(model, f"agg_mu_{g}", state[f"agg_mu_{g}"])
        for name in ("agg_chol", "agg_lin", "agg_pool"):
            setattr(model, f"{name}_{g}", state[f"{name}_{g}"])
    for name in ("cal_bias", "cal_n", "post_mu", "post_lv", "post_key"):
        setattr(model, name, state[name])
    model.load_state_dict(state, strict=True)
    model.agg_keys = {g: list(v) for g, v in meta.get("agg_keys", {}).items()}
    model.cal_keys = list(meta.get("cal_keys", []))
    model.genes = read_genes(ckpt)  # type: ignore[assignment]
    model.train_config = meta.get("train", {})  # type: ignore[assignment]
    return model.eval()
