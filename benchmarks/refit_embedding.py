"""Refit the sample embedding's definition of finished `bulkfm train` runs with the current code
and evaluate them again, leaving the trained weights, the blend and the PCA as they were:

    python benchmarks/refit_embedding.py RUN_DIR [RUN_DIR ...] --matrix M --labels L \
        --out NEW_ROOT

Each RUN_DIR is copied to NEW_ROOT/<parent name>/<run name> (the original stays as it was);
its readout's embedding is refitted on its own training + validation split (labels for the
block choice, as `bulkfm train --labels` does) and `bulkfm evaluate` is rerun there, writing
bench_eval.json like benchmarks/train_datasets.py. What a change to
bulkfm.model.sample_embedding or bulkfm.train.choose does to the probes, on the same models.
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from bulkfm.evaluate.run import evaluate
from bulkfm.matrix.store import open_matrix
from bulkfm.model.checkpoint import load
from bulkfm.model.readout import load_readout
from bulkfm.train.choose import fit_sample_embedding
from bulkfm.train.embed import model_view


def refit(run: Path, matrix: Path, labels: Path) -> dict:
    model = load(run)
    readout = load_readout(run)
    data = model_view(model, open_matrix(matrix))
    split = pd.read_csv(run / "splits.tsv", sep="\t", dtype=str).set_index("sample_id")["split"]
    where = np.array([split.get(str(s), "") for s in data.samples])
    seed = int(json.loads((run / "config.json").read_text()).get("seed", 0))
    readout.embedding = fit_sample_embedding(
        model, readout, data, np.nonzero(where == "train")[0], np.nonzero(where == "val")[0],
        labels=str(labels), batch_size=8, device="cpu", seed=seed)
    readout.save(run / "readout")
    t = time.perf_counter()
    res = evaluate(run, matrix, labels=str(labels), out=run / "evaluate", progress=False)
    res["eval_s"] = time.perf_counter() - t
    (run / "bench_eval.json").write_text(json.dumps(res, indent=2))
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--matrix", type=Path, required=True)
    ap.add_argument("--labels", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(1)
    for run in args.runs:
        new = args.out / run.parent.name / run.name
        if not (new / "bench_eval.json").exists():
            shutil.rmtree(new, ignore_errors=True)
            shutil.copytree(run, new, ignore=shutil.ignore_patterns("evaluate", "bench_eval.json"))
            res = refit(new, args.matrix, args.labels)
        else:
            res = json.loads((new / "bench_eval.json").read_text())
        probe = {k: round(v["accuracy"], 4) for k, v in (res.get("probe") or {}).items()
                 if isinstance(v, dict) and "accuracy" in v}
        print(f"{new}: held-out probe {probe}", flush=True)


if __name__ == "__main__":
    main()
