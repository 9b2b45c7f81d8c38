"""``bulkfm train``: prepare, stage 1 (autoencoder), stage 2 (graph transformer), curves."""

from __future__ import annotations

import json
import logging
import time
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from bulkfm.common.atomic import write_text_atomic
from bulkfm.model.autoencoder import Autoencoder
from bulkfm.model.bulkformer import BulkFormer
from bulkfm.model.config import ModelConfig
from bulkfm.train import ddp
from bulkfm.train.choose import CHOICES, choose_ae_stage, fit_sample_embedding
from bulkfm.train.config import TrainConfig
from bulkfm.train.loop import MetricsLog, Stage, StopFlag, ae_loss, masked_loss, run_stage
from bulkfm.train.plots import plot_training_curves
from bulkfm.train.prepare import check_resume, clean, load_prepared, prepare

log = logging.getLogger(__name__)


def _bf16(spec: str | bool, device: torch.device) -> bool:
    if spec == "auto":
        return device.type == "cuda" and torch.cuda.is_bf16_supported()
    on = spec is True or str(spec).lower() in ("true", "1", "yes", "on")
    if on and device.type != "cuda":
        log.warning("bf16 asked for on %s: autocast bf16 is used on GPUs only; training in "
                    "float32", device)
        return False
    return on


def train(matrix: str, out: str | Path, tcfg: TrainConfig, *, labels: str | None = None,
          splits: str | None = None, resume: bool = True, progress: bool = True,
          restart_on_change: bool = False) -> Path:
    out = Path(out)
    d = ddp.setup(tcfg.device)
    tcfg = tcfg.resolved(d.device.type)
    if tcfg.num_threads > 0:
        torch.set_num_threads(tcfg.num_threads)
    try:
        if d.main:
            if not resume:
                clean(out)
            elif restart_on_change:
                try:
                    check_resume(out, tcfg, matrix, splits)
                except ValueError as exc:
                    log.warning("%s: starting over", exc)
                    clean(out)
            prepare(out, matrix, tcfg, labels=labels, splits=splits, progress=progress)
        d.barrier()
        prep = load_prepared(out, matrix, tcfg)
        bf16 = _bf16(tcfg.bf16, d.device)
        metrics = MetricsLog(out / "metrics.csv", enabled=d.main)
        t0 = time.perf_counter()
        torch.manual_seed(tcfg.seed)  # parameter init
        ae, model, cfg = _modules(prep, tcfg, out)
        with StopFlag() as stop:
            stage1 = Stage("ae", "autoencoder", ae, cfg, tcfg.ae,
                           partial(ae_loss, mask_value=cfg.mask_value))
            choose_ae_stage(stage1, prep, tcfg, out, d, stop, metrics, bf16, progress)
            ae = run_stage(stage1, prep.data, prep.train_rows, prep.val_rows, tcfg, out, d,
                           prep.genes, stop, metrics, bf16, progress=progress)
            if model.ae is not None:
                model.ae.load_state_dict(ae.state_dict())
                # stage 1's context, frozen in stage 2 unless trained jointly (BulkFormer)
                model.ae.requires_grad_(tcfg.joint_context)
            loss = partial(masked_loss, context_extra=tcfg.context_extra_mask,
                           mask_value=cfg.mask_value)
            model = run_stage(Stage("model", "bulkformer", model, cfg, tcfg.transformer, loss),
                              prep.data, prep.train_rows, prep.val_rows, tcfg, out, d,
                              prep.genes, stop, metrics, bf16,
                              frozen=None if tcfg.joint_context else model.ae,
                              progress=progress)
        readout_report = None
        if d.main:
            readout_report = _fit_readout(model, prep, tcfg, out, d.device, labels)
        if d.main:
            plot_training_curves(out / "metrics.csv", out / "training_curves.png")
            summary = _summary(out, prep, d, bf16, cfg, readout_report,
                               round(time.perf_counter() - t0, 2))
            write_text_atomic(out / "summary.json", json.dumps(summary, indent=2) + "\n")
        d.barrier()
        return out
    finally:
        ddp.teardown()


def _summary(out: Path, prep, d, bf16: bool, cfg: ModelConfig, readout_report: dict | None,
             seconds: float) -> dict:
    return {"out": str(out), "genes": len(prep.genes),
            "train_samples": len(prep.train_rows), "val_samples": len(prep.val_rows),
            "device": str(d.device), "world_size": d.world, "bf16": bf16,
            "use_esm2": cfg.use_esm2, "use_gcn": cfg.use_gcn,
            "use_ae_context": cfg.use_ae_context,
            "init": str(prep.init.path) if prep.init is not None else None,
            "readout": readout_report,
            "choices": (json.loads((out / CHOICES).read_text())
                        if (out / CHOICES).exists() else None),
            "seconds_this_run": seconds}


def _modules(prep, tcfg: TrainConfig, out: Path) -> tuple[torch.nn.Module, BulkFormer, ModelConfig]:
    """(autoencoder, BulkFormer, its config): fresh, or the pretrained ones (``init``)."""
    if prep.init is not None:
        from bulkfm.model.checkpoint import load

        ae = load(prep.init.ae_dir).train()
        model = load(prep.init.model_dir).train()
        log.info("init: continuing from %s (architecture, gene statistics, graph and weights "
                 "kept)", prep.init.path)
        return ae, model, model.config
    cfg = tcfg.model_config(len(prep.genes),
                            int(prep.esm2.shape[1]) if prep.esm2 is not None else 0,
                            use_esm2=prep.use_esm2,
                            use_gcn=tcfg.model.use_gcn and prep.edge_index is not None)
    stats = pd.read_parquet(out / "gene_stats.parquet")
    gmean = torch.tensor(stats["mean"].to_numpy(np.float32))
    gstd = torch.tensor(stats["std"].to_numpy(np.float32))
    ae = Autoencoder(cfg.n_genes, cfg.ae_hidden, cfg.ae_latent, cfg.dropout, gmean, gstd,
                     cfg.mask_value)
    torch.manual_seed(tcfg.seed + 1)
    model = BulkFormer(cfg, esm2=prep.esm2, has_protein=prep.has_protein,
                       edge_index=prep.edge_index, edge_weight=prep.edge_weight,
                       gene_mean=gmean, gene_std=gstd)
    return ae, model, cfg


def _fit_readout(model: torch.nn.Module, prep, tcfg: TrainConfig, out: Path,
                 device: torch.device, labels: str | None = None) -> dict | None:
    """Fit (or reuse) DIR/readout: blend weights on the validation split, kNN reference and
    PCA from the training split (bulkfm.model.readout), and the sample embedding's definition
    (bulkfm.train.choose.fit_sample_embedding; added to a readout saved without one)."""
    from bulkfm.model.readout import fit_readout, load_readout

    readout = load_readout(out, len(prep.genes))
    if readout is not None and readout.embedding is not None:
        log.info("readout: %s exists; reused", out / "readout")
        return {"mode": readout.mode, **readout.report,
                "embedding": readout.embedding_report()}
    model.eval()
    if readout is None:
        readout = fit_readout(model, prep.data, prep.train_rows, prep.val_rows,
                              mask_fraction=tcfg.mask_fraction, knn_k=tcfg.knn_k,
                              max_reference=tcfg.max_reference, embed_pca=tcfg.embed_pca,
                              blend=tcfg.blend, seed=tcfg.seed,
                              batch_size=tcfg.transformer.batch_size, device=device)
    readout.embedding = fit_sample_embedding(
        model, readout, prep.data, prep.train_rows, prep.val_rows, labels=labels,
        batch_size=tcfg.transformer.batch_size, device=device, seed=tcfg.seed)
    readout.save(out / "readout")
    return {"mode": readout.mode, **readout.report, "embedding": readout.embedding_report()}
