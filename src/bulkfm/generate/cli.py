"""CLI: ``bulkfm train-generator``, ``bulkfm generate``, ``bulkfm evaluate-generator``."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
from collections.abc import Iterator

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    t = subparsers.add_parser(
        "train-generator", help="train the metadata-conditioned expression generator",
        description="Conditional VAE with biological, perturbation and technical latents, "
                    "trained in row batches from a matrix and a metadata table (harmonized "
                    "Parquet, or TSV with sample_id, one column per field, optional study). "
                    "Whole studies (else groups/participants) and one unseen combination are "
                    "held out for evaluate-generator. Resumes from DIR's last checkpoint.")
    t.add_argument("--matrix", required=True, help="matrix store, Parquet gene x sample or HDF5")
    t.add_argument("--metadata", required=True, help="harmonized.parquet or a metadata TSV")
    t.add_argument("--out", required=True, help="output directory")
    t.add_argument("--config", help="YAML/JSON: the generate: section or its keys")
    t.add_argument("--config-json", help="the config as a JSON object (overrides --config)")
    t.add_argument("--no-resume", action="store_true", help="ignore existing checkpoints")
    t.add_argument("--no-progress", action="store_true")
    t.set_defaults(func=run_train)

    g = subparsers.add_parser(
        "generate", help="generate profiles for metadata queries, or counterfactuals",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Query mode: one row of Q per experiment (columns = fields, IDs or labels; "
                    "empty = unknown), N profiles each. Counterfactual mode: each sample of "
                    "MATRIX, had the --set fields been different (its technical and, unless set, "
                    "perturbation latent and its residual are kept).",
        epilog="examples:\n  bulkfm generate runs/gen --query q.tsv --n 100 -o gen.parquet\n"
               "  bulkfm generate runs/gen --counterfactual m.parquet --set sex=male -o cf.parquet")
    g.add_argument("model", help="output directory of train-generator")
    mode = g.add_mutually_exclusive_group(required=True)
    mode.add_argument("--query", help="TSV: one row per experiment")
    mode.add_argument("--counterfactual", metavar="MATRIX", help="samples to change")
    g.add_argument("--n", type=int, default=1, help="profiles per query row")
    g.add_argument("--set", dest="set_", metavar="FIELD=VALUE[,...]",
                   help="fields to change (counterfactual mode)")
    g.add_argument("--metadata", help="counterfactual: the samples' metadata (else inferred)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--threads", type=int, default=1, help="torch CPU threads (0 = default)")
    g.add_argument("-o", "--output", required=True, help="OUT.parquet")
    g.set_defaults(func=run_generate)

    _register_evaluate(subparsers)


def _register_evaluate(subparsers: argparse._SubParsersAction) -> None:
    e = subparsers.add_parser(
        "evaluate-generator", help="held-out conditions vs train-mean/additive baselines, "
                                   "realism, disentanglement; last line JSON",
        description="Per held-out condition the Pearson r of the change from the training grand "
                    "mean (all genes, top-50), against the training mean (seen) and the "
                    "additive baseline (unseen); RF AUC, energy distance, kNN recall in a PCA of "
                    "real samples; label accuracy ratio; variance ratio; probes. Prints one "
                    "JSON object last; writes report.md and figures.")
    e.add_argument("model", help="output directory of train-generator")
    e.add_argument("--matrix", required=True)
    e.add_argument("--metadata", required=True)
    e.add_argument("-o", "--output", help="report directory (default MODEL/evaluate)")
    for flag, default, what in (
            ("--gen-per-sample", 20, "per held-out sample (at least 2)"),
            ("--min-profiles", 5000, "per held-out condition at least, for its mean"),
            ("--max-profiles", 300_000, "in all at most (never under --gen-per-sample each)")):
        e.add_argument(flag, type=int, default=default, help=f"generated profiles {what}")
    e.add_argument("--min-samples", type=int, default=3, help="real samples per condition")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--threads", type=int, default=1, help="torch CPU threads (0 = default)")
    e.add_argument("--no-plots", action="store_true")
    e.set_defaults(func=run_evaluate)


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
    from bulkfm.cli import UserError
    from bulkfm.model.checkpoint import CheckpointError

    try:
        yield
    except (ValueError, FileNotFoundError, KeyError, CheckpointError) as exc:
        raise UserError(str(exc)) from exc


def _threads(n: int) -> None:
    if n > 0:
        import torch

        torch.set_num_threads(n)


def run_train(args: argparse.Namespace) -> int:
    from bulkfm.generate.train import load_config, train_generator

    with _user_errors():
        cfg = load_config(args.config, args.config_json)
        path = train_generator(args.matrix, args.metadata, args.out, cfg,
                               progress=not args.no_progress, resume=not args.no_resume)
    print(path)
    return 0


def run_generate(args: argparse.Namespace) -> int:
    from bulkfm.cli import UserError
    from bulkfm.generate import query as q
    from bulkfm.generate.train import load_generator

    _threads(args.threads)
    with _user_errors():
        model = load_generator(args.model)
        if args.query:
            if args.set_:
                raise UserError("--set belongs to --counterfactual; in query mode put the "
                                "fields in the query table")
            table = q.read_query(args.query, model)
            summary = q.generate(model, table, args.n, args.output, seed=args.seed)
            print(json.dumps({"output": args.output, "rows": len(table),
                              "profiles": len(table) * args.n,
                              "unseen_rows": [int(i) + 2 for i in summary.query_row[
                                  ~summary.seen_combination]]}))
        else:
            if not args.set_:
                raise UserError("--counterfactual needs --set field=value[,...]")
            sets = q.parse_set(args.set_, model)
            summary = q.counterfactual(model, args.counterfactual, sets, args.output,
                                       metadata=args.metadata)
            print(json.dumps({"output": args.output, "samples": len(summary), "set": sets}))
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from bulkfm.generate.evaluate import evaluate_generator

    _threads(args.threads)
    with _user_errors():
        r = evaluate_generator(args.model, args.matrix, args.metadata, out=args.output,
                               gen_per_sample=args.gen_per_sample,
                               min_profiles=args.min_profiles, max_profiles=args.max_profiles,
                               min_samples=args.min_samples,
                               seed=args.seed, plots=not args.no_plots)
    for name in ("seen", "unseen"):
        s = r.get(name)
        if s:
            print(f"{name:6s} generator r {s['generator_r']}  baseline r "
                  f"{s.get('train_mean_r', s.get('additive_r'))}  top-50 "
                  f"{s['generator_r_top50']} vs {s.get('train_mean_r_top50', s.get('additive_r_top50'))}")
    print(json.dumps(r))
    return 0
