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
from bulkfm.train import ddp
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
        cfg = tcfg.model_config(len(prep.genes),
                                int(prep.esm2.shape[1]) if prep.esm2 is not None else 0)
        cfg.use_esm2 = prep.use_esm2
        if prep.edge_index is None:
            cfg.use_gcn = False
        stats = pd.read_parquet(out / "gene_stats.parquet")
        gmean = torch.tensor(stats["mean"].to_numpy(np.float32))
        gstd = torch.tensor(stats["std"].to_numpy(np.float32))
        metrics = MetricsLog(out / "metrics.csv", enabled=d.main)
        t0 = time.perf_counter()
        torch.manual_seed(tcfg.seed)  # parameter init
        with StopFlag() as stop:
            ae = Autoencoder(cfg.n_genes, cfg.ae_hidden, cfg.ae_latent, cfg.dropout, gmean, gstd,
                             cfg.mask_value)
            ae = run_stage(Stage("ae", "autoencoder", ae, cfg, tcfg.ae, ae_loss), prep.data,
                           prep.train_rows, prep.val_rows, tcfg, out, d, prep.genes, stop,
                           metrics, bf16, progress=progress)
            torch.manual_seed(tcfg.seed + 1)
            model = BulkFormer(cfg, esm2=prep.esm2, has_protein=prep.has_protein,
                               edge_index=prep.edge_index, edge_weight=prep.edge_weight,
                               gene_mean=gmean, gene_std=gstd)
            if model.ae is not None:
                model.ae.load_state_dict(ae.state_dict())
                model.ae.requires_grad_(False)  # stage 1's context, frozen in stage 2
            loss = partial(masked_loss, context_extra=tcfg.context_extra_mask,
                           mask_value=cfg.mask_value)
            run_stage(Stage("model", "bulkformer", model, cfg, tcfg.transformer, loss),
                      prep.data, prep.train_rows, prep.val_rows, tcfg, out, d, prep.genes, stop,
                      metrics, bf16, frozen=model.ae, progress=progress)
        if d.main:
            plot_training_curves(out / "metrics.csv", out / "training_curves.png")
            summary = {"out": str(out), "genes": len(prep.genes),
                       "train_samples": len(prep.train_rows), "val_samples": len(prep.val_rows),
                       "device": str(d.device), "world_size": d.world, "bf16": bf16,
                       "use_esm2": cfg.use_esm2, "use_gcn": cfg.use_gcn,
                       "use_ae_context": cfg.use_ae_context,
                       "seconds_this_run": round(time.perf_counter() - t0, 2)}
            write_text_atomic(out / "summary.json", json.dumps(summary, indent=2) + "\n")
        d.barrier()
        return out
    finally:
        ddp.teardown()
