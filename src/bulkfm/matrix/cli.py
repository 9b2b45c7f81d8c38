"""``bulkfm matrix``: stack per-sample gene vectors into the training matrix."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pandas as pd

from bulkfm.cli import UserError

log = logging.getLogger("bulkfm.matrix")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("matrix", help="gene x sample counts, TPM, log1p(TPM) store",
                       description="Build or import the expression matrix store.")
    m = p.add_subparsers(dest="matrix_command", metavar="STEP", required=True)

    b = m.add_parser("build", help="stack per-sample gene vectors of QC-passing samples")
    b.add_argument("--qc", required=True,
                   help="qc.tsv from `bulkfm quant qc`: its passing rows and their `genes` paths "
                        "(relative to qc.tsv's directory, or absolute)")
    b.add_argument("--reference", required=True, help="directory with genes.parquet")
    b.add_argument("--metadata", help="optional per-sample table (parquet/TSV) joined on sample")
    b.add_argument("--gene-types", default="protein_coding",
                   help="comma-separated gene types to keep; 'all' keeps every gene")
    b.add_argument("--counts-from-abundance", default="no",
                   choices=["no", "scaledTPM", "lengthScaledTPM"])
    b.add_argument("--no-renormalize-tpm", action="store_true",
                   help="keep TPM as Salmon computed it over all transcripts")
    b.add_argument("--chunk", type=int, default=256)
    b.add_argument("-o", "--out", required=True)
    b.set_defaults(func=_build)

    i = m.add_parser("import-archs4", help="convert an ARCHS4-style HDF5 into a matrix store")
    i.add_argument("h5")
    i.add_argument("--gene-table", help="gene table TSV (gene_id, gene_name, gene_type)")
    i.add_argument("--gene-types", default="protein_coding")
    i.add_argument("-o", "--out", required=True)
    i.set_defaults(func=_import)


def _gene_types(value: str) -> list[str] | None:
    return None if value == "all" else [t for t in value.split(",") if t]


def _build(args: argparse.Namespace) -> int:
    from bulkfm.matrix.build import build_matrix
    from bulkfm.samples import ID_COLUMNS, id_column, read_sample_table

    qc = pd.read_csv(args.qc, sep="\t", dtype={"sample": str, "reason": str, "genes": str})
    if "genes" not in qc.columns:
        raise UserError(f"{args.qc} has no `genes` column (written by an older bulkfm): rerun the "
                        "batches and their QC table (snakemake --forcerun quant_batch; finished "
                        "samples are skipped, not quantified again)")
    passing = qc[qc["status"] == "pass"]
    excluded = len(qc) - len(passing)
    if excluded:
        log.warning("%d of %d samples excluded by QC or errors (see failed.tsv)", excluded, len(qc))
    if passing.empty:
        raise UserError(f"no sample passed QC in {args.qc}; see the failed list for reasons, and "
                        "the quant.qc thresholds in the config")
    unnamed = passing.loc[passing["genes"].isna(), "sample"].tolist()
    if unnamed:
        raise UserError(f"{args.qc}: passing samples with no `genes` path: {', '.join(unnamed[:5])}"
                        f"{' …' if len(unnamed) > 5 else ''}; rerun their batches (snakemake "
                        "--forcerun quant_batch)")
    samples = passing.rename(columns={"sample": "sample_id"}).reset_index(drop=True)
    if args.metadata:
        meta = read_sample_table(args.metadata)
        key = id_column(meta, known=samples["sample_id"], where=args.metadata)
        meta = meta.drop(columns=[c for c in ID_COLUMNS if c not in (key, "run") and c in meta.columns])
        meta = meta.rename(columns={key: "sample_id"}).drop_duplicates("sample_id")
        extra = [c for c in meta.columns if c not in samples.columns or c == "sample_id"]
        samples = samples.merge(meta[extra], on="sample_id", how="left")
    paths = [Path(args.qc).parent / p for p in samples["genes"]]  # relative to qc.tsv
    samples = samples.drop(columns=["genes"])
    genes = pd.read_parquet(Path(args.reference) / "genes.parquet")
    try:
        build_matrix(samples, paths, genes, Path(args.out), gene_types=_gene_types(args.gene_types),
                     counts_from_abundance=args.counts_from_abundance,
                     renormalize_tpm=not args.no_renormalize_tpm, chunk=args.chunk)
    except (ValueError, FileNotFoundError) as exc:
        raise UserError(str(exc)) from None
    return 0


def _import(args: argparse.Namespace) -> int:
    from bulkfm.matrix.build import import_archs4
    from bulkfm.quant.reference import read_gene_table

    table = read_gene_table(args.gene_table) if args.gene_table else None
    import_archs4(Path(args.h5), Path(args.out), gene_table=table,
                  gene_types=_gene_types(args.gene_types))
    return 0
