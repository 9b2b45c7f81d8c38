"""Probe ablation of sample-embedding variants on the finished default runs of
benchmarks/train_datasets.py:

    python benchmarks/probe_embedding_variants.py WORKDIR [--datasets tcga6 rnasum pickrell]
        [--seeds 0 1 2]     # any WORKDIR/<dataset>/default_s<seed> of train_datasets.py,
                            # e.g. --datasets single_KICH single_UVM for its --runs single

Blocks: the model's PCA (fitted on its training split), AE latent, pooled hidden states.
Variants: each block alone, the unions, ``mix`` = PCA-50 of the blocks standardised with
training-split statistics and scaled by 1/sqrt(dim) (bulkfm.model.sample_embedding),
``pca|aeK`` = the PCA block beside the AE latent reduced to its first K principal components
(fitted on the training split), and PCA-50 of raw log1p. Scores: held-out (fit on train,
score on test), val (fit on train, score on val) and cv (grouped 5-fold CV over the labelled
train + val samples, mean of 3 partitions: what bulkfm train's chooser can see)."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.decomposition import PCA

from bulkfm.evaluate.probes import probe_cv, probe_split
from bulkfm.evaluate.run import read_labels
from bulkfm.matrix.store import open_matrix
from bulkfm.model.checkpoint import load
from bulkfm.train.embed import iter_embeddings, model_view, readout_of

DATA = Path(__file__).resolve().parents[1] / "../shared/data"
TCGA6 = "tcga_rnaseqv2_6cohorts/expression_rsem_normalized.genes_x_samples.parquet"


def variants(parts: dict[str, np.ndarray], tr: np.ndarray) -> dict[str, np.ndarray]:
    def std(b: np.ndarray) -> np.ndarray:
        return (b - b[tr].mean(0)) / (b[tr].std(0) + 1e-8) / np.sqrt(b.shape[1])

    p, z, h = parts["pca"], parts["ae"], parts["pooled"]
    out = {"pca": p, "ae": z, "pooled": h, "pca|ae": np.hstack([p, z]),
           "pca|pooled": np.hstack([p, h]), "pca|ae|pooled": np.hstack([p, z, h])}
    for k in (10, 25, 50):
        k_ = min(k, int(tr.sum()) - 1, z.shape[1])
        out[f"pca|ae{k}"] = np.hstack([p, PCA(k_, random_state=0).fit(z[tr]).transform(z)])
    for w in ((1, 1, 1), (1, 1, 0), (1, 0, 1)):
        cat = np.hstack([wi * std(parts[b]) for wi, b in zip(w, ("pca", "ae", "pooled"))
                         if wi])
        k = min(50, int(tr.sum()) - 1, cat.shape[1])
        out[f"mix{w}"] = PCA(k, random_state=0).fit(cat[tr]).transform(cat)
    return out


def one_run(d: Path, matrix: Path, labels: Path) -> list[dict]:
    model, ro = load(d), readout_of(d)
    data = model_view(model, open_matrix(matrix))
    lab = read_labels(labels, list(data.samples))
    split = pd.read_csv(d / "splits.tsv", sep="\t").set_index("sample_id")["split"]
    lab = lab[lab.sample_id.map(split).notna()]
    pos = {x: i for i, x in enumerate(data.samples)}
    lab = lab.assign(row=lab.sample_id.map(pos)).sort_values("row").reset_index(drop=True)
    rows = lab.row.to_numpy()
    got: dict[str, list] = {"pca": [], "ae": [], "pooled": [], "raw": []}
    for idx, _, parts, _ in iter_embeddings(model, data, rows, 16, torch.device("cpu"), False,
                                            ro):
        for b in ("pca", "ae", "pooled"):
            got[b].append(parts[b])
        got["raw"].append(data.rows(idx))
    parts = {b: np.concatenate(v) for b, v in got.items()}
    sp = lab.sample_id.map(split).to_numpy()
    tr, te, va = sp == "train", sp == "test", sp == "val"
    y, g = lab.label.to_numpy(), lab.group.to_numpy()
    res = []
    feats = variants(parts, tr)
    feats["pca_raw"] = parts["raw"]
    tv = tr | va
    for k, x in feats.items():
        pca = 50 if k == "pca_raw" else None
        res.append({"run": d.name, "feat": k,
                    "held": probe_split(x, y, tr, te, 0, pca, groups=g)["accuracy"],
                    "val": probe_split(x, y, tr, va, 0, pca, groups=g)["accuracy"]
                    if va.any() else np.nan,
                    "cv": np.mean([probe_cv(x[tv], y[tv], g[tv], 5, r, pca)["accuracy"]
                                   for r in range(3)]) if len(set(y[tv])) > 1 else np.nan})
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("workdir", type=Path)
    ap.add_argument("--datasets", nargs="+", default=["tcga6", "rnasum", "pickrell"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--out", type=Path, help="TSV of every run x variant")
    args = ap.parse_args()
    torch.set_num_threads(1)
    w = args.workdir
    rows = []
    for ds in args.datasets:
        matrix = DATA / TCGA6 if ds == "tcga6" else w / f"{ds}.parquet"
        for s in args.seeds:
            d = w / ds / f"default_s{s}"
            if (d / "summary.json").exists():
                rows += [{"dataset": ds, "seed": s, **r}
                         for r in one_run(d, matrix, w / f"{ds}_labels.tsv")]
    df = pd.DataFrame(rows)
    if args.out:
        df.to_csv(args.out, sep="\t", index=False)
    pd.set_option("display.width", 200)
    print(df.groupby(["dataset", "feat"])[["held", "val", "cv"]].agg(["mean", "std"]).round(4)
          .to_string())


if __name__ == "__main__":
    main()
