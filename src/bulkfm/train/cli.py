"""CLI: ``bulkfm split``, ``bulkfm train``, ``bulkfm embed`` (sample embeddings)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import replace
from pathlib import Path

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    _register_split(subparsers)
    _register_train(subparsers)
    _register_embed(subparsers)


def _register_split(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "split", help="train/val/test split by group (study, BioProject, participant)",
        description="Assign every sample to train, val or test so that no group spans two "
                    "splits. Writes a TSV: sample_id, group, split.")
    p.add_argument("--samples", required=True,
                   help="a matrix (store dir, .parquet, .h5) or a table with a sample_id column")
    p.add_argument("--groups", help="TSV/CSV/Parquet with sample_id (or run/sample) and a group "
                                    "column (group, bioproject, study or participant)")
    p.add_argument("--group-column", help="name of the group column (default: first found)")
    p.add_argument("--id-column", help="sample id column in --groups (default: first of "
                                       "sample_id, sample, run)")
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--test-fraction", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", required=True, help="splits.tsv to write")
    p.set_defaults(func=run_split)


def _register_train(subparsers: argparse._SubParsersAction) -> None:
    t = subparsers.add_parser(
        "train", help="train the autoencoder, then the graph transformer (resumable, DDP)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Stage 1 trains a denoising autoencoder, stage 2 the BulkFormer-style graph "
                    "transformer with 15% masked genes. Resumes from DIR's last complete "
                    "checkpoint by default; SIGTERM saves a checkpoint and exits 143. Run under "
                    "`torchrun --nproc_per_node=N` for DDP (gloo on CPU, nccl on GPU).",
        epilog="example:\n  bulkfm train --matrix expr.parquet --labels labels.tsv "
               "--out runs/tcga --config train.yaml")
    t.add_argument("--matrix", required=True,
                   help="bulkfm matrix store, Parquet gene x sample table or ARCHS4-style HDF5")
    t.add_argument("--labels", help="TSV with sample_id, label and optional group (the split "
                                    "keeps each group in one split)")
    t.add_argument("--splits", help="use this splits.tsv instead of making one")
    t.add_argument("--out", required=True, help="output directory")
    t.add_argument("--config", help="YAML/JSON training config (or a workflow config with a "
                                    "train: section)")
    t.add_argument("--config-json", help="the config as a JSON object (the workflow passes its "
                                         "train: section this way); overrides --config")
    t.add_argument("--on-config-change", choices=("error", "restart"), default="error",
                   help="DIR was started with other settings: stop with an error (default) or "
                        "delete its training outputs and start over (the workflow's choice)")
    t.add_argument("--graph", help="edges.parquet (default: built from the train split)")
    t.add_argument("--esm2", help="esm2.pt gene embeddings (default: from the config; none = "
                                  "learned gene embedding)")
    t.add_argument("--init", metavar="PRETRAINED_DIR",
                   help="continue from a pretrained bulkfm train directory: its genes, gene "
                        "statistics, graph and weights are kept, the matrix is matched to its "
                        "genes by id (missing genes are fed as masked and never scored; < 50 %% "
                        "shared is an error)")
    t.add_argument("--gene-table", help="TSV with entrez_gene_id, symbol, ensembl_gene_id to map "
                                        "gene ids when --init's model and the matrix use "
                                        "different id types")
    t.add_argument("--device", help="auto | cpu | cuda (overrides the config)")
    t.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                   help="continue from DIR's last complete checkpoint (default); --no-resume "
                        "deletes DIR's previous training outputs and starts over")
    t.add_argument("--no-progress", action="store_true", help="no progress bars")
    t.set_defaults(func=run_train)


def _register_embed(subparsers: argparse._SubParsersAction) -> None:
    e = subparsers.add_parser(
        "embed", help="sample embeddings (and contextual gene embeddings) of a trained model "
                      "for a matrix",
        description="Writes OUT/sample_embeddings.parquet (sample_id, embedding_* = the "
                    "model's sample embedding, as defined in DIR/readout when it was trained; "
                    "then its blocks: pca_* = PCA of the raw log1p fitted on the training "
                    "samples, emb_* = pooled final hidden states, ae_* = AE latent) and "
                    "OUT/gene_embeddings.parquet. (ESM2 gene embeddings: bulkfm embed-genes.)")
    e.add_argument("checkpoint", help="checkpoint dir or bulkfm train output dir")
    e.add_argument("--matrix", required=True)
    e.add_argument("-o", "--output", required=True, help="output directory")
    e.add_argument("--batch-size", type=int, default=8)
    e.add_argument("--device", default="auto")
    e.add_argument("--allow-missing-genes", type=float, default=0.0, metavar="FRACTION",
                   help="accept up to this fraction of model genes absent from the matrix "
                        "(fed as masked); default 0 = error")
    e.set_defaults(func=run_embed)


def _user_errors():
    from bulkfm.model.checkpoint import CheckpointError
    from bulkfm.train.data import DataError

    return (ValueError, FileNotFoundError, DataError, CheckpointError)


def run_split(args: argparse.Namespace) -> int:
    from bulkfm.cli import UserError
    from bulkfm.train.split import make_split, read_groups, write_split

    try:
        src = Path(args.samples)
        if src.is_dir() or src.suffix in (".h5", ".hdf5") or (
                src.suffix == ".parquet" and _is_matrix(src)):
            from bulkfm.matrix.store import open_matrix

            samples = list(open_matrix(src).samples)
        else:
            from bulkfm.samples import id_column, read_sample_table

            table = read_sample_table(src)
            samples = table[id_column(table, where=src)].astype(str).drop_duplicates().tolist()
        groups = (read_groups(args.groups, samples, args.group_column, args.id_column)
                  if args.groups else None)
        table = make_split(samples, groups, val_fraction=args.val_fraction,
                           test_fraction=args.test_fraction, seed=args.seed)
        write_split(table, args.output)
    except _user_errors() as exc:
        raise UserError(str(exc)) from exc
    counts = table["split"].value_counts().to_dict()
    print(f"wrote {args.output}: " + ", ".join(f"{k} {counts.get(k, 0)}"
                                                for k in ("train", "val", "test")))
    return 0


def _is_matrix(path: Path) -> bool:
    import pyarrow.parquet as pq

    return "gene" in pq.ParquetFile(path).schema_arrow.names


def run_train(args: argparse.Namespace) -> int:
    from bulkfm.cli import UserError
    from bulkfm.train.config import load_config
    from bulkfm.train.loop import Diverged, Preempted
    from bulkfm.train.run import train

    try:
        if args.config_json:
            from bulkfm.train.config import from_dict

            tcfg = from_dict(json.loads(args.config_json))
        else:
            tcfg = load_config(args.config)
        given = {k: getattr(args, k) for k in ("graph", "esm2", "device", "init", "gene_table")}
        tcfg = replace(tcfg, **{k: v for k, v in given.items() if v})  # flags win
        out = train(args.matrix, args.out, tcfg, labels=args.labels, splits=args.splits,
                    resume=args.resume, progress=not args.no_progress,
                    restart_on_change=args.on_config_change == "restart")
    except Preempted as exc:
        print(f"bulkfm train: {exc}", file=sys.stderr)
        return 143
    except Diverged as exc:
        print(f"bulkfm train: error: {exc}", file=sys.stderr)
        return 3
    except _user_errors() as exc:
        raise UserError(str(exc)) from exc
    print(f"trained model in {out} (load with bulkfm.model.load({str(out)!r}))")
    return 0


def run_embed(args: argparse.Namespace) -> int:
    from bulkfm.cli import UserError
    from bulkfm.train.embed import embed_matrix

    try:
        out = embed_matrix(args.checkpoint, args.matrix, args.output,
                           batch_size=args.batch_size, device=args.device,
                           allow_missing=args.allow_missing_genes)
    except _user_errors() as exc:
        raise UserError(str(exc)) from exc
    print(f"wrote {out}/sample_embeddings.parquet and gene_embeddings.parquet")
    return 0
