"""Would choosing stage 1's regularisation on validation help? (CPU, reuses finished runs)

    python benchmarks/choose_regularisation.py RUN_DIR [RUN_DIR ...] [--out table.tsv]

Each RUN_DIR is a finished default ``bulkfm train`` run (e.g. WORKDIR/tcga6/default_s0 of
benchmarks/train_datasets.py). For each, stage 1 is retrained at the training mask that run
chose (``choices.json``), from the same initial weights, batches and masks, once per
regularisation candidate: AE dropout 0.1 and 0.3, weight decay 1.0 (the run's own candidate,
dropout 0 / weight decay 0.01, is read from ``DIR/choices/``). Every candidate is scored on
the validation split (masked-gene MSE, fixed masks: the criterion ``bulkfm train`` uses for the
mask) and on the test split (masked-gene MSE and pooled PCC of the AE alone, fixed masks). The
question is whether the candidate that validation picks beats the default on the test split
across matrices; the test split is only read for that report.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from bulkfm.model.autoencoder import Autoencoder
from bulkfm.model.checkpoint import load
from bulkfm.train import ddp
from bulkfm.train.choose import _candidate_dir, masked_ae_loss
from bulkfm.train.config import from_dict
from bulkfm.train.data import apply_mask, random_mask, split_rows, step_generator
from bulkfm.train.loop import MetricsLog, Stage, StopFlag, ae_loss, run_stage, validation_loss
from bulkfm.train.prepare import load_prepared

CANDIDATES = {"default": {}, "dropout_0.1": {"dropout": 0.1}, "dropout_0.3": {"dropout": 0.3},
              "wd_1.0": {"weight_decay": 1.0}}


@torch.no_grad()
def test_scores(ae: torch.nn.Module, data, rows: np.ndarray, fraction: float, seed: int,
                mask_value: float) -> tuple[float, float]:
    """(masked-gene MSE, pooled PCC) of the AE on ``rows``, fixed masks."""
    ae.eval()
    ys, ps = [], []
    for i, start in enumerate(range(0, len(rows), 32)):
        x = torch.from_numpy(data.rows(rows[start:start + 32]))
        mask = random_mask(tuple(x.shape), fraction, step_generator(seed, 77, i))
        recon, _ = ae(apply_mask(x, mask, mask_value))
        keep = mask & (x != mask_value)
        ys.append(x[keep].numpy())
        ps.append(recon.float()[keep].numpy())
    y, p = np.concatenate(ys), np.concatenate(ps)
    return float(np.mean((y - p) ** 2)), float(np.corrcoef(y, p)[0, 1])


def one_run(run: Path, work: Path) -> list[dict]:
    record = json.loads((run / "config.json").read_text())
    tcfg = from_dict(record["train"]).resolved("cpu")
    matrix = record["matrix"]
    prep = load_prepared(run, matrix, tcfg)
    fraction = float(json.loads((run / "choices.json").read_text())["ae_mask_fraction"]["chosen"])
    test_rows = split_rows(prep.split, list(prep.matrix.samples), "test")
    cfg = tcfg.model_config(len(prep.genes), 0, use_esm2=False, use_gcn=False)
    stats = pd.read_parquet(run / "gene_stats.parquet")
    gmean = torch.tensor(stats["mean"].to_numpy(np.float32))
    gstd = torch.tensor(stats["std"].to_numpy(np.float32))
    d = ddp.setup("cpu")
    rows = []
    for name, change in CANDIDATES.items():
        if name == "default":
            ae = load(_candidate_dir(run, fraction) / "ae")
        else:
            where = work / run.parent.name / run.name / name
            where.mkdir(parents=True, exist_ok=True)
            torch.manual_seed(tcfg.seed)  # the same initial weights as the run's stage 1
            ae = Autoencoder(cfg.n_genes, cfg.ae_hidden, cfg.ae_latent,
                             change.get("dropout", cfg.dropout), gmean, gstd, cfg.mask_value)
            t = replace(tcfg, weight_decay=change.get("weight_decay", tcfg.weight_decay))
            stage = Stage("ae", "autoencoder", ae, cfg, t.ae,
                          partial(ae_loss, mask_value=cfg.mask_value), mask_fraction=fraction)
            with StopFlag() as stop:
                ae = run_stage(stage, prep.data, prep.train_rows, prep.val_rows, t, where, d,
                               prep.genes, stop, MetricsLog(where / "metrics.csv", True), False,
                               progress=False)
        val = validation_loss(ae, lambda m, x, k, xi: masked_ae_loss(m, x, k, xi, cfg.mask_value),
                              prep.data, prep.val_rows, tcfg, tcfg.ae.batch_size,
                              torch.device("cpu"), False, cfg.mask_value)
        mse, pcc = test_scores(ae, prep.data, test_rows, tcfg.mask_fraction, tcfg.seed,
                               cfg.mask_value)
        rows.append({"run": f"{run.parent.name}/{run.name}", "mask": fraction, "candidate": name,
                     "val_masked_mse": val, "test_masked_mse": mse, "test_masked_pcc": pcc})
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--work", type=Path, default=Path("/tmp/bulkfm-reg"))
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    table = pd.DataFrame([r for run in args.runs for r in one_run(run, args.work)])
    picked = table.loc[table.groupby("run")["val_masked_mse"].idxmin()].set_index("run")
    base = table[table.candidate == "default"].set_index("run")
    summary = pd.DataFrame({"picked": picked["candidate"],
                            "test_pcc_default": base["test_masked_pcc"],
                            "test_pcc_picked": picked["test_masked_pcc"],
                            "test_mse_default": base["test_masked_mse"],
                            "test_mse_picked": picked["test_masked_mse"]})
    summary["pcc_gain"] = summary["test_pcc_picked"] - summary["test_pcc_default"]
    if args.out:
        table.to_csv(args.out, sep="\t", index=False)
    print(table.to_markdown(index=False, floatfmt=".4f"))
    print()
    print(summary.to_markdown(floatfmt=".4f"))


if __name__ == "__main__":
    main()
