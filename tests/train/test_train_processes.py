"""Real processes: SIGTERM (SLURM preemption) saves and resumes; torchrun DDP on CPU (gloo)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

import bulkfm.model

LONG = """
max_genes: 0
model: {ae_hidden: [32], ae_latent: 8, d_model: 16, n_layers: 1, n_heads: 2, nb_features: 8}
ae: {steps: 100000, batch_size: 8, lr: 0.001}
transformer: {steps: 4, batch_size: 4, lr: 0.001}
checkpoint_every: 100000
eval_every: 100000
num_threads: 1
ae_mask_choices: []  # stage 1 trains once: SIGTERM and DDP are under test, not the choice
ae_regularisation_choices: []
"""


def _bulkfm() -> list[str]:
    exe = shutil.which("bulkfm")
    return [exe] if exe else [sys.executable, "-m", "bulkfm.cli"]


def test_sigterm_saves_a_checkpoint_and_the_rerun_finishes(tcga_small, tmp_path: Path) -> None:
    matrix, labels = tcga_small
    cfg = tmp_path / "long.yaml"
    cfg.write_text(LONG)
    out = tmp_path / "run"
    cmd = [*_bulkfm(), "train", "--matrix", str(matrix), "--labels", str(labels), "--out",
           str(out), "--config", str(cfg), "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = out / "metrics.csv"
    # Wait for the real condition (training has logged steps, so the SIGTERM handler is in
    # place), with a bound only against a hang: a loaded machine may take minutes to get there.
    deadline = time.time() + 600
    while proc.poll() is None and time.time() < deadline and not (metrics.exists() and metrics.stat().st_size > 200):
        time.sleep(0.2)
    assert proc.poll() is None and metrics.exists(), proc.communicate() if proc.poll() is not None else "no steps in 600 s"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 143, err
    assert "Rerun the same command to resume" in err
    saved = sorted((out / "checkpoints" / "ae").glob("step-*"))
    assert len(saved) == 1 and (saved[0] / "manifest.json").exists()
    step = int(saved[0].name.split("-")[1])
    assert step > 0
    # Resume with a shorter stage 1 (steps are not part of the run's identity) to finish.
    cfg.write_text(LONG.replace("steps: 100000", f"steps: {step + 3}"))
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"resuming from {saved[0]}" in done.stderr
    m = pd.read_csv(metrics)
    assert list(m[m.stage == "ae"]["step"]) == list(range(1, step + 4))  # no gap, no repeat
    assert bulkfm.model.load(out).kind == "bulkformer"


def test_torchrun_ddp_on_cpu(tcga_small, tmp_path: Path) -> None:
    matrix, labels = tcga_small
    cfg = tmp_path / "ddp.yaml"
    cfg.write_text(LONG.replace("steps: 100000", "steps: 4").replace(
        "checkpoint_every: 100000", "checkpoint_every: 2").replace("num_threads: 1",
                                                                   "num_threads: 1\ndevice: cpu"))
    out = tmp_path / "run"
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [torchrun, "--standalone", "--nproc_per_node=2", "-m", "bulkfm.cli", "train",
         "--matrix", str(matrix), "--labels", str(labels), "--out", str(out), "--config",
         str(cfg), "--no-progress"], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "backend gloo" in done.stderr
    model = bulkfm.model.load(out)
    assert model.kind == "bulkformer"
    summary = (out / "summary.json").read_text()
    assert '"world_size": 2' in summary
    m = pd.read_csv(out / "metrics.csv")
    # one row per global step (rank 0 writes), batch 4 per rank -> 8 samples per step
    assert list(m[m.stage == "model"]["step"]) == [1, 2, 3, 4]
