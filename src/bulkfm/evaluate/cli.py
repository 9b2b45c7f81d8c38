"""CLI: ``bulkfm evaluate DIR --matrix FILE [--labels FILE]``; last stdout line = JSON metrics."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "evaluate", help="masked-gene reconstruction vs baselines, linear probes, t-SNE",
        description="Evaluate a `bulkfm train` output directory on a matrix: masked-gene PCC/MSE "
                    "of the model vs gene-mean, kNN and the AE alone on held-out samples; "
                    "linear-probe accuracy from the model embedding, the AE latent and PCA of "
                    "raw log1p; t-SNE plots. Prints one JSON line of metrics last.")
    p.add_argument("train_dir", help="output directory of `bulkfm train`")
    p.add_argument("--matrix", required=True, help="matrix store, Parquet gene x sample table "
                                                   "or ARCHS4-style HDF5")
    p.add_argument("--labels", help="TSV: sample_id, label, optional group")
    p.add_argument("-o", "--output", help="output directory (default DIR/evaluate)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--mask-fraction", type=float, help="default: the training config's")
    p.add_argument("--knn-k", type=int, default=10)
    p.add_argument("--max-reference", type=int, default=2000,
                   help="train samples kept as the kNN reference (memory bound)")
    p.add_argument("--max-samples", type=int, default=2000, help="held-out samples scored")
    p.add_argument("--probe-repeats", type=int, default=3,
                   help="repeats of grouped 5-fold CV for the probes, over all labelled samples "
                        "(0 = only the held-out probe)")
    p.add_argument("--compare", nargs="+", metavar="DIR", default=[],
                   help="other bulkfm train directories on the same genes (e.g. a run from "
                        "scratch beside a --init one): scored on the same held-out samples and "
                        "masks as method compare:NAME, with paired tests")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--allow-missing-genes", type=float, default=0.0, metavar="FRACTION")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bulkfm.cli import UserError
    from bulkfm.evaluate.run import evaluate
    from bulkfm.model.checkpoint import CheckpointError
    from bulkfm.train.data import DataError

    try:
        result = evaluate(args.train_dir, args.matrix, labels=args.labels, out=args.output,
                          batch_size=args.batch_size, mask_fraction=args.mask_fraction,
                          knn_k=args.knn_k, max_reference=args.max_reference,
                          max_samples=args.max_samples, seed=args.seed, device=args.device,
                          allow_missing=args.allow_missing_genes,
                          probe_repeats=args.probe_repeats, compare=args.compare,
                          progress=not args.no_progress)
    except (ValueError, FileNotFoundError, DataError, CheckpointError) as exc:
        raise UserError(str(exc)) from exc
    rec = result["reconstruction"]
    for m, r in rec.items():
        print(f"{m:10s} masked PCC {r['pcc']:.4f}  per-sample PCC {r['sample_pcc_mean']:.4f}  "
              f"MSE {r['mse']:.4f}")
    for m, t in result.get("paired", {}).items():
        print(f"model vs {m:10s} better on {t['better_fraction']:.0%} of held-out samples, "
              f"Wilcoxon p {t['wilcoxon_p']:.2g}")
    for k, v in result.get("probe", {}).items():
        if isinstance(v, dict):
            print(f"probe {k:10s} accuracy {v['accuracy']:.4f}  macro-F1 {v['macro_f1']:.4f}")
    for k, v in result.get("probe_repeated_cv", {}).items():
        print(f"probe {k:10s} repeated grouped CV accuracy {v['accuracy']:.4f} "
              f"± {v['accuracy_sd']:.4f}")
    print(json.dumps(result, separators=(",", ":")))
    return 0
