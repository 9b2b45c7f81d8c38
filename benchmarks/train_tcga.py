"""Train + evaluate on real TCGA expression (CPU): masked-gene PCC vs baselines, probes.

    python benchmarks/train_tcga.py --tcga ../shared/data/tcga_rnaseqv2_6cohorts \
        --workdir /tmp/bulkfm-bench [--variants full no_ae_tokens no_residual no_gcn ...]

Runs ``bulkfm train`` with benchmarks/train_tcga.yaml (plus the variant's model switches) and
``bulkfm evaluate`` on the held-out test split (split by participant), then prints Markdown
tables. Finished training runs in WORKDIR are reused (training resumes / skips), evaluation
always reruns. Labels: the TCGA cohort (6 cancer types). Probes: held-out (fit on train,
scored on test) and repeated grouped 5-fold CV over train + test samples.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path

import pandas as pd
import torch
import yaml

from bulkfm.evaluate.run import evaluate
from bulkfm.report.gather import markdown_table
from bulkfm.train.config import from_dict
from bulkfm.train.run import train

# Model switches (``model:``) and training keys each variant changes in the YAML.
VARIANTS: dict[str, dict] = {
    "full": {},
    "no_ae_tokens": {"model": {"ae_tokens": False}},  # tokens without AE recon/residual
    "no_residual": {"model": {"ae_residual": False}},  # head predicts from the trunk alone
    "no_gcn": {"model": {"use_gcn": False}},
    "no_ae_context": {"model": {"use_ae_context": False, "ae_residual": False}},
    "extra_mask": {"context_extra_mask": 0.3},  # AE context sees 30 % more genes masked
    "ae_one_hidden": {"model": {"ae_hidden": [256]}},  # shallower AE (1000 -> 256 -> 64)
}


def tcga_args(description: str, choices: list[str], default: list[str],
              option: str) -> argparse.Namespace:
    """The command line shared by the TCGA benchmarks (``--OPTION`` picks runs by name)."""
    p = argparse.ArgumentParser(description=description,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tcga", required=True, type=Path, help="tcga_rnaseqv2_6cohorts folder")
    p.add_argument("--workdir", required=True, type=Path)
    p.add_argument("--config", type=Path, default=Path(__file__).with_name("train_tcga.yaml"))
    p.add_argument(f"--{option}", nargs="+", default=default, choices=choices)
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    args.workdir.mkdir(parents=True, exist_ok=True)
    return args


def tcga_inputs(tcga: Path, workdir: Path) -> tuple[Path, Path]:
    """(expression matrix, labels TSV written into WORKDIR: cohort = label, participant = group)."""
    labels = workdir / "labels.tsv"
    meta = pd.read_csv(tcga / "samples.tsv", sep="\t")
    meta.rename(columns={"cohort": "label", "participant": "group"})[
        ["sample_id", "label", "group"]].to_csv(labels, sep="\t", index=False)
    return tcga / "expression_rsem_normalized.genes_x_samples.parquet", labels


def merged(base: dict, changes: dict) -> dict:
    """``base`` config with ``changes`` applied (``model`` keys merged one level down)."""
    cfg = {**base, **{k: v for k, v in changes.items() if k != "model"}}
    cfg["model"] = {**base.get("model", {}), **changes.get("model", {})}
    return cfg


def main() -> None:
    args = tcga_args(__doc__, list(VARIANTS), ["full"], "variants")
    matrix, labels = tcga_inputs(args.tcga, args.workdir)
    base = yaml.safe_load(args.config.read_text())
    rec_rows, probe_rows, rep_rows, time_rows = [], [], [], []
    for name in args.variants:
        cfg = merged(base, VARIANTS[name])
        out = args.workdir / name
        t = time.perf_counter()
        train(str(matrix), out, from_dict(cfg), labels=str(labels), progress=False)
        t_train = time.perf_counter() - t
        m = pd.read_csv(out / "metrics.csv")
        stage_s = m.groupby("stage")["elapsed_s"].max().to_dict()
        t = time.perf_counter()
        res = evaluate(out, matrix, labels=str(labels), progress=False)
        t_eval = time.perf_counter() - t
        for method, r in res["reconstruction"].items():
            if name != args.variants[0] and method != "model":
                continue  # baselines do not depend on the variant
            rec_rows.append({"variant": name, "method": method, "pcc": r["pcc"],
                             "sample_pcc": r["sample_pcc_mean"], "mse": r["mse"]})
        for feats, r in res.get("probe", {}).items():
            if isinstance(r, dict) and (name == args.variants[0] or feats == "model"):
                probe_rows.append({"variant": name, "features": feats,
                                   "accuracy": r["accuracy"], "macro_f1": r["macro_f1"],
                                   "C": r["C"]})
        for feats, r in res.get("probe_repeated_cv", {}).items():
            if name == args.variants[0] or feats == "model":
                rep_rows.append({"variant": name, "features": feats,
                                 "accuracy_mean": r["accuracy"], "accuracy_sd": r["accuracy_sd"],
                                 "macro_f1_mean": r["macro_f1"]})
        first = m.groupby("stage")["loss"].apply(lambda s: s.iloc[:10].mean()).to_dict()
        last = m.groupby("stage")["loss"].apply(lambda s: s.iloc[-10:].mean()).to_dict()
        time_rows.append({"variant": name, "ae_s": stage_s.get("ae", 0.0),
                          "model_s": stage_s.get("model", 0.0), "eval_s": t_eval,
                          "this_call_train_s": t_train,
                          "ae_loss_first→last": f"{first['ae']:.2f}→{last['ae']:.2f}",
                          "model_loss_first→last": f"{first['model']:.2f}→{last['model']:.2f}"})
        n_held = res["n_held_out"]
    print(f"TCGA {matrix.name}: held-out test split = {n_held} samples (split by participant); "
          f"torch {torch.__version__}, {os.cpu_count()} CPU cores, num_threads "
          f"{base.get('num_threads', 0)}\n")
    for title, rows in (("Masked-gene reconstruction (15 % masked, held-out samples)", rec_rows),
                        ("Linear probe, cancer type (6 classes): fit on train, scored on test",
                         probe_rows),
                        ("Linear probe, repeated grouped 5-fold CV (3 repeats, train + test)",
                         rep_rows),
                        ("Time (s) and training loss (mean of first/last 10 steps)", time_rows)):
        print(f"### {title}\n")
        print(markdown_table(pd.DataFrame(rows)))
        print()


if __name__ == "__main__":
    main()
