"""One training stage: resumable, deterministic, DDP-aware, with a NaN guard and SIGTERM save.

Determinism: the batch rows, the mask and the dropout seed of step ``t`` are functions of
(seed, stage, t, rank) only, so RNG state need not be carried: a run stopped after k steps and
resumed (weights + optimizer state from the checkpoint) does exactly the same steps k..N as an
uninterrupted one.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn
from tqdm.auto import tqdm

from bulkfm.common.atomic import atomic_path
from bulkfm.model.checkpoint import (
    is_complete,
    latest_checkpoint,
    load_train_state,
    prune_checkpoints,
    save_checkpoint,
    verify,
)
from bulkfm.model.config import ModelConfig
from bulkfm.train.config import StageConfig, TrainConfig
from bulkfm.train.data import BatchSchedule, SubsetMatrix, apply_mask, random_mask, step_generator
from bulkfm.train.ddp import Dist

log = logging.getLogger(__name__)

STAGE_IDS = {"ae": 1, "model": 2}
METRIC_COLUMNS = ["stage", "step", "loss", "val_loss", "lr", "grad_norm", "samples_per_s",
                  "elapsed_s"]
LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


class Preempted(RuntimeError):
    """SIGTERM/SIGUSR1 arrived; a checkpoint was written and the run can be resumed."""


class Diverged(RuntimeError):
    """Loss or gradient became NaN/Inf; training stopped without writing a checkpoint."""


class StopFlag:
    """Turns SIGTERM (SLURM preemption, ``kill``) and SIGUSR1 into a flag checked per step."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopFlag:
        for sig in (signal.SIGTERM, signal.SIGUSR1):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.signal = signum
        log.warning("received %s: saving a checkpoint after this step", signal.Signals(signum).name)

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


# --------------------------------------------------------------------------- losses
def ae_loss(module: nn.Module, x: torch.Tensor, mask: torch.Tensor,
            x_in: torch.Tensor, mask_value: float = -10.0) -> torch.Tensor:
    recon, _ = module(x_in)  # denoising: reconstruct every gene from the masked input
    present = x != mask_value  # genes the matrix lacks (--init) read as the mask value
    if bool(present.all()):
        return F.mse_loss(recon.float(), x)
    return F.mse_loss(recon.float()[present], x[present])


def masked_loss(module: nn.Module, x: torch.Tensor, mask: torch.Tensor,
                x_in: torch.Tensor, context_extra: float = 0.0,
                mask_value: float = -10.0) -> torch.Tensor:
    """MSE on the masked genes. ``context_extra`` > 0 (stage 2, training only): the frozen AE
    context sees ``x_in`` with that fraction of its observed genes masked as well, meant to make
    the AE err on its own train samples as it does on unseen ones (measured on TCGA: no gain,
    benchmarks/results/train.md). Drawn from the per-step torch seed, so resumed runs repeat
    it."""
    if context_extra > 0 and module.training:
        extra = torch.rand(x_in.shape, device=x_in.device) < context_extra
        pred = module(x_in, ae_input=x_in.masked_fill(extra, mask_value))
    else:
        pred = module(x_in)  # [B, G]
    mask = mask & (x != mask_value)  # never score a gene the matrix lacks (--init)
    return F.mse_loss(pred[mask].float(), x[mask])


# --------------------------------------------------------------------------- metrics
class MetricsLog:
    """metrics.csv (rank 0 only), plus TensorBoard events when tensorboard is installed."""

    def __init__(self, path: Path, enabled: bool) -> None:
        self.path, self.enabled = path, enabled
        self.tb = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(path.parent / "tensorboard"))
            except ImportError:  # tensorboard is optional
                self.tb = None

    def truncate(self, stage: str, step: int) -> None:
        """Drop rows a resumed run will write again (this stage after ``step``, later stages)."""
        if not self.enabled or not self.path.exists():
            return
        order = list(STAGE_IDS)
        with open(self.path, newline="") as fh:
            rows = [r for r in csv.DictReader(fh)
                    if order.index(r["stage"]) < order.index(stage)
                    or (r["stage"] == stage and int(r["step"]) <= step)]
        with atomic_path(self.path, suffix=".csv") as tmp, open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, METRIC_COLUMNS)
            w.writeheader()
            w.writerows(rows)

    def write(self, **row: Any) -> None:
        if not self.enabled:
            return
        new = not self.path.exists()
        with open(self.path, "a", newline="") as fh:
            w = csv.DictWriter(fh, METRIC_COLUMNS)
            if new:
                w.writeheader()
            w.writerow({k: row.get(k, "") for k in METRIC_COLUMNS})
        if self.tb is not None:
            for k in ("loss", "val_loss", "lr", "grad_norm", "samples_per_s"):
                if row.get(k) not in (None, ""):
                    self.tb.add_scalar(f"{row['stage']}/{k}", float(row[k]), int(row["step"]))


def lr_at(step: int, base: float, warmup: int, total: int) -> float:
    """Linear warmup, then cosine decay to 10 %."""
    if warmup and step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


@dataclass
class Stage:
    name: str  # "ae" | "model"
    kind: str  # checkpoint kind: "autoencoder" | "bulkformer"
    module: nn.Module
    model_cfg: ModelConfig
    cfg: StageConfig
    loss: LossFn
    mask_fraction: float | None = None  # training mask; None = the run's mask_fraction


@torch.no_grad()
def validation_loss(module: nn.Module, loss: LossFn, data: SubsetMatrix, rows: np.ndarray,
                    tcfg: TrainConfig, batch_size: int, device: torch.device,
                    autocast: bool, mask_value: float) -> float:
    """Mean loss over the first ``eval_batches`` validation batches, with fixed masks."""
    if len(rows) == 0:
        return float("nan")
    was_training = module.training
    module.eval()
    total, n = 0.0, 0
    for i, start in enumerate(range(0, len(rows), batch_size)):
        if i >= tcfg.eval_batches:
            break
        idx = rows[start : start + batch_size]
        x = torch.from_numpy(data.rows(idx)).to(device)
        mask = random_mask(tuple(x.shape), tcfg.mask_fraction,
                           step_generator(tcfg.seed, 99, i)).to(device)
        x_in = apply_mask(x, mask, mask_value)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            total += float(loss(module, x, mask, x_in)) * len(idx)
        n += len(idx)
    module.train(was_training)
    return total / n


@dataclass
class _Run:
    """What one stage's steps share: the wrapped module, optimizer, checkpoint folder and the
    best-by-validation state (``best/`` is a checkpoint beside the step ones, so a resumed run
    knows the best so far)."""
    stage: Stage
    module: nn.Module
    net: nn.Module
    opt: torch.optim.Optimizer
    params: list[nn.Parameter]
    root: Path
    use_best: bool
    best_val: float = math.inf
    best_step: int = 0


def _open_run(stage: Stage, module: nn.Module, tcfg: TrainConfig, out: Path, d: Dist,
              val_rows: np.ndarray, metrics: MetricsLog) -> tuple[_Run, int]:
    """Optimizer, resumed state (latest step checkpoint, best so far) and the DDP wrapper."""
    params = [p for p in module.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=stage.cfg.lr, weight_decay=tcfg.weight_decay)
    root = out / "checkpoints" / stage.name
    start = 0
    latest = latest_checkpoint(root)
    if latest is not None:
        module.load_state_dict(load_file(str(latest / "weights.safetensors")))
        state = load_train_state(latest)
        opt.load_state_dict(state["optimizer"])
        start = int(state["step"])
        log.info("%s: resuming from %s (step %d of %d)", stage.name, latest, start,
                 stage.cfg.steps)
    metrics.truncate(stage.name, start)
    net: nn.Module = module
    if d.world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            module, device_ids=[d.device.index] if d.device.type == "cuda" else None)
    run = _Run(stage, module, net, opt, params, root,
               use_best=d.main and len(val_rows) > 0 and tcfg.early_stopping_patience > 0)
    if is_complete(root / "best"):
        meta = json.loads((root / "best" / "config.json").read_text())
        run.best_val, run.best_step = float(meta["val_loss"]), int(meta["step"])
    return run, start


def _train_step(run: _Run, data: SubsetMatrix, rows: np.ndarray, step: int, tcfg: TrainConfig,
                d: Dist, bf16: bool) -> tuple[float, float, float]:
    """One optimizer step on ``rows`` -> (mean loss over ranks, gradient norm, lr)."""
    stage, sid = run.stage, STAGE_IDS[run.stage.name]
    torch.manual_seed(int(step_generator(tcfg.seed, sid, step, d.rank, 1).initial_seed()))
    x = torch.from_numpy(data.rows(rows)).to(d.device, non_blocking=True)
    fraction = tcfg.mask_fraction if stage.mask_fraction is None else stage.mask_fraction
    mask = random_mask(tuple(x.shape), fraction,
                       step_generator(tcfg.seed, sid, step, d.rank)).to(d.device)
    x_in = apply_mask(x, mask, stage.model_cfg.mask_value)
    lr = lr_at(step, stage.cfg.lr, tcfg.warmup_steps, stage.cfg.steps)
    for group in run.opt.param_groups:
        group["lr"] = lr
    with torch.autocast(d.device.type, dtype=torch.bfloat16, enabled=bf16):
        loss = stage.loss(run.net, x, mask, x_in)
    mean_loss = float(d.mean(loss.detach().reshape(1))[0])
    if not math.isfinite(mean_loss):
        raise Diverged(f"{stage.name} step {step + 1}: loss is {mean_loss}; stopped without "
                       f"saving. Last good checkpoint: {latest_checkpoint(run.root) or 'none'}. "
                       "Lower the learning rate or check the input matrix")
    run.opt.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = float(torch.nn.utils.clip_grad_norm_(run.params, tcfg.grad_clip))
    if not math.isfinite(grad_norm):
        raise Diverged(f"{stage.name} step {step + 1}: gradient norm is {grad_norm}; "
                       "stopped without saving. Lower the learning rate")
    run.opt.step()
    return mean_loss, grad_norm, lr


def _validate(run: _Run, done: int, data: SubsetMatrix, val_rows: np.ndarray,
              tcfg: TrainConfig, d: Dist, bf16: bool, genes: list[str],
              frozen: nn.Module | None) -> float | str:
    """Validation loss at step ``done`` (rank 0; "" elsewhere); keeps ``best/`` up to date."""
    if not d.main:
        return ""
    stage = run.stage
    val = validation_loss(run.module, stage.loss, data, val_rows, tcfg, stage.cfg.batch_size,
                          d.device, bf16, stage.model_cfg.mask_value)
    if frozen is not None:
        frozen.eval()
    if run.use_best and val < run.best_val:
        run.best_val, run.best_step = val, done
        save_checkpoint(run.root / "best", run.module, stage.model_cfg, genes, kind=stage.kind,
                        meta={"stage": stage.name, "step": done, "val_loss": val})
    return val


def _save_step(run: _Run, done: int, tcfg: TrainConfig, d: Dist, genes: list[str]) -> None:
    if d.main:
        stage = run.stage
        save_checkpoint(run.root / f"step-{done:08d}", run.module, stage.model_cfg, genes,
                        kind=stage.kind,
                        train_state={"step": done, "stage": stage.name,
                                     "optimizer": run.opt.state_dict()},
                        meta={"stage": stage.name, "step": done})
        prune_checkpoints(run.root, tcfg.keep_checkpoints)
    d.barrier()


def _finish(run: _Run, final: Path, tcfg: TrainConfig, d: Dist, genes: list[str]) -> nn.Module:
    """The stage's result: the best-by-validation weights (when kept), saved as ``final``."""
    stage, module = run.stage, run.module
    best_dir = run.root / "best"
    if run.use_best and is_complete(best_dir):
        log.info("%s: chose step %d of at most %d (best validation loss %.4g; patience %d "
                 "evaluations of %d steps)", stage.name, run.best_step, stage.cfg.steps,
                 run.best_val, tcfg.early_stopping_patience, tcfg.eval_every)
        verify(best_dir)
        module.load_state_dict(load_file(str(best_dir / "weights.safetensors")))
    if d.main:
        save_checkpoint(final, module, stage.model_cfg, genes, kind=stage.kind,
                        meta={"stage": stage.name, "step": stage.cfg.steps,
                              "best_step": run.best_step, "best_val_loss": run.best_val
                              if math.isfinite(run.best_val) else None})
    d.barrier()
    if d.world > 1 and not d.main:  # every rank continues with rank 0's chosen weights
        module.load_state_dict(load_file(str(final / "weights.safetensors")))
    return module


def run_stage(stage: Stage, data: SubsetMatrix, train_rows: np.ndarray, val_rows: np.ndarray,
              tcfg: TrainConfig, out: Path, d: Dist, genes: list[str], stop: StopFlag,
              metrics: MetricsLog, bf16: bool, frozen: nn.Module | None = None,
              progress: bool = True) -> nn.Module:
    """Train ``stage.module`` for ``stage.cfg.steps`` steps (or resume / skip if done).

    With validation samples and ``early_stopping_patience`` > 0, ``steps`` is a ceiling: the
    stage stops when the validation loss has not improved for that many evaluations, and the
    best-by-validation weights are the stage's result (logged: "chose step N")."""
    module = stage.module.to(d.device)
    final = out / stage.name
    if is_complete(final):
        log.info("%s: finished checkpoint %s exists; skipping stage", stage.name, final)
        verify(final)
        module.load_state_dict(load_file(str(final / "weights.safetensors")))
        return module
    run, start = _open_run(stage, module, tcfg, out, d, val_rows, metrics)
    patience = tcfg.early_stopping_patience * tcfg.eval_every  # steps without a better val
    run.net.train()
    if frozen is not None:
        frozen.eval()
    schedule = BatchSchedule(train_rows, stage.cfg.batch_size,
                             tcfg.seed * 7919 + STAGE_IDS[stage.name], d.rank, d.world)
    bar = tqdm(total=stage.cfg.steps, initial=start, desc=f"train {stage.name}", unit="step",
               disable=not (d.main and progress))
    t0 = time.perf_counter()
    for step in range(start, stage.cfg.steps):
        t_step = time.perf_counter()
        rows = schedule.batch(step)
        mean_loss, grad_norm, lr = _train_step(run, data, rows, step, tcfg, d, bf16)
        done, dt = step + 1, time.perf_counter() - t_step
        val: float | str = ""
        if done % tcfg.eval_every == 0 or done == stage.cfg.steps:
            val = _validate(run, done, data, val_rows, tcfg, d, bf16, genes, frozen)
        metrics.write(stage=stage.name, step=done, loss=f"{mean_loss:.6g}",
                      val_loss=f"{val:.6g}" if val != "" else "", lr=f"{lr:.4g}",
                      grad_norm=f"{grad_norm:.4g}",
                      samples_per_s=f"{len(rows) * d.world / dt:.3g}",
                      elapsed_s=f"{time.perf_counter() - t0:.2f}")
        bar.set_postfix(loss=f"{mean_loss:.4f}")
        bar.update(1)
        stopping = d.any(stop.signal is not None)
        early = d.any(run.use_best and done - run.best_step >= patience)
        if done % tcfg.checkpoint_every == 0 or done == stage.cfg.steps or stopping:
            _save_step(run, done, tcfg, d, genes)
        if stopping:
            bar.close()
            raise Preempted(f"stopped by signal at {stage.name} step {done}; checkpoint "
                            f"{run.root / f'step-{done:08d}'} written. Rerun the same command "
                            "to resume")
        if early:
            log.info("%s: early stop at step %d of %d: validation loss %.4g has not improved "
                     "for %d steps (best at step %d)", stage.name, done, stage.cfg.steps,
                     run.best_val, done - run.best_step, run.best_step)
            break
    bar.close()
    return _finish(run, final, tcfg, d, genes)
