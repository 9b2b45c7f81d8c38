"""Can any stage-1 autoencoder latent beat PCA of raw values in the cancer-type probe? (CPU)

    python benchmarks/probe_ae_sweep.py --tcga ../shared/data/tcga_rnaseqv2_6cohorts \
        --workdir /tmp/bulkfm-ae-sweep [--settings base wide_latent ...]

Each setting trains only stage 1 (``transformer.steps: 0``) with ``bulkfm train`` on
benchmarks/train_tcga.yaml plus the setting's changes, then ``bulkfm evaluate`` scores the AE
latent and PCA-50 of the raw log1p values with the same probe protocol (held-out test split and
repeated grouped 5-fold CV). Finished runs in WORKDIR are reused. Prints a Markdown table.
"""

from __future__ import annotations

import pandas as pd
import yaml

from bulkfm.evaluate.run import evaluate
from bulkfm.report.gather import markdown_table
from bulkfm.train.config import from_dict
from bulkfm.train.run import train
from train_tcga import merged, tcga_args, tcga_inputs  # benchmarks/ is sys.path[0]

# Config changes per setting (merged into train_tcga.yaml; ``model`` keys merged one level down).
SETTINGS: dict[str, dict] = {
    "base": {},
    "wide_latent": {"model": {"ae_hidden": [512, 512], "ae_latent": 320}},
    "one_hidden": {"model": {"ae_hidden": [256]}},
    "mask_50": {"mask_fraction": 0.5},
    "dropout_30": {"model": {"dropout": 0.3}},
    "short": {"ae": {"steps": 100, "batch_size": 32, "lr": 0.001}},
    "long": {"ae": {"steps": 1500, "batch_size": 32, "lr": 0.001}},
    "weight_decay_05": {"weight_decay": 0.5},
    "genes_5000": {"max_genes": 5000},
    "genes_5000_one_hidden": {"max_genes": 5000, "model": {"ae_hidden": [256]}},
    "all_genes_one_hidden": {"max_genes": 0, "model": {"ae_hidden": [256]}},
}


def main() -> None:
    args = tcga_args(__doc__, list(SETTINGS), list(SETTINGS), "settings")
    matrix, labels = tcga_inputs(args.tcga, args.workdir)
    base = yaml.safe_load(args.config.read_text())
    rows = []
    for name in args.settings:
        out = args.workdir / name
        cfg = merged(base, SETTINGS[name])
        cfg["transformer"] = {**base["transformer"], "steps": 0}  # stage 1 only
        train(str(matrix), out, from_dict(cfg), labels=str(labels), progress=False)
        res = evaluate(out, matrix, labels=str(labels), progress=False)
        m = pd.read_csv(out / "metrics.csv")
        ae = m[m["stage"] == "ae"]
        for feats in ("ae_latent", "pca_raw"):
            rows.append({"setting": name, "features": feats,
                         "held_out": res["probe"][feats]["accuracy"],
                         "repeated_cv": res["probe_repeated_cv"][feats]["accuracy"],
                         "repeated_cv_sd": res["probe_repeated_cv"][feats]["accuracy_sd"],
                         "ae_masked_pcc": res["reconstruction"]["ae"]["pcc"],
                         "ae_val_loss": float(ae["val_loss"].dropna().iloc[-1])
                         if "val_loss" in ae else float("nan")})
    print(f"TCGA {matrix.name}: stage-1 autoencoder latent vs PCA-50 of raw log1p, "
          "cancer type (6 classes)\n")
    print(markdown_table(pd.DataFrame(rows)))


if __name__ == "__main__":
    main()
