"""``bulkfm quant``: reference preparation, per-batch quantification, QC tables."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

import pandas as pd

from bulkfm.cli import UserError
from bulkfm.common.atomic import atomic_path

log = logging.getLogger("bulkfm.quant")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("quant", help="Salmon index, per-batch quantification, QC gate",
                       description="Salmon quantification and gene-level aggregation.")
    q = p.add_subparsers(dest="quant_command", metavar="STEP", required=True)

    idx = q.add_parser("index", help="build the salmon index (decoy-aware with --genome)")
    idx.add_argument("--transcripts", required=True, help="transcriptome FASTA (.gz ok)")
    idx.add_argument("--genome", help="genome FASTA: build a decoy-aware gentrome index (production)")
    idx.add_argument("--kmer", type=int, default=31)
    idx.add_argument("--gencode", action="store_true", help="GENCODE FASTA headers (salmon --gencode)")
    idx.add_argument("--threads", type=int, default=2)
    idx.add_argument("-o", "--out", required=True, help="index directory")
    idx.set_defaults(func=_index)

    ref = q.add_parser("genes", help="tx2gene and the fixed gene order for a reference")
    ref.add_argument("--transcripts", required=True, help="transcriptome FASTA (headers give tx2gene)")
    ref.add_argument("--tx2gene", help="tx2gene TSV/CSV; default: derived from the FASTA headers")
    ref.add_argument("--gene-table", help="gene annotation TSV (gene_id, gene_name, gene_type)")
    ref.add_argument("-o", "--out", required=True, help="output directory (genes.parquet, tx2gene.parquet)")
    ref.set_defaults(func=_genes)

    b = q.add_parser("batch", help="quantify one batch of samples from the sample sheet")
    b.add_argument("--sheet", required=True, help="sample sheet (or resolved runs table)")
    b.add_argument("--batch", required=True, help="batch id, e.g. b00003")
    b.add_argument("--batch-size", type=int, required=True)
    b.add_argument("--index", required=True)
    b.add_argument("--reference", required=True, help="directory from `bulkfm quant genes`")
    b.add_argument("--outdir", required=True, help="quant output directory (samples/ below it)")
    b.add_argument("-o", "--out", required=True, help="batch summary TSV")
    b.add_argument("--threads", type=int, default=2)
    b.add_argument("--libtype", default="A")
    b.add_argument("--min-mapping-rate", type=float, default=30.0)
    b.add_argument("--min-reads", type=int, default=0, help="minimum reads processed")
    b.add_argument("--min-mapped", type=int, default=0, help="minimum reads mapped")
    b.add_argument("--library-type", choices=["any", "stranded", "unstranded"], default="any")
    b.add_argument("--on-error", choices=["exclude", "fail"], default="exclude")
    b.add_argument("--keep-fastq", action="store_true")
    b.add_argument("--fastq-dir", default="results/fastq")
    b.add_argument("--transcript-quant", choices=["gzip", "plain", "none"], default="gzip")
    b.add_argument("--no-check-fastq", action="store_true")
    b.add_argument("--sra-config", help="the sra settings (YAML file or JSON text): download "
                   "method, retries, endpoints; default: built-in defaults")
    b.set_defaults(func=_batch)

    s = q.add_parser("qc", help="merge batch summaries into qc.tsv and failed.tsv")
    s.add_argument("batches", nargs="+", help="batch summary TSVs")
    s.add_argument("--qc", required=True, help="output: all samples with QC metrics")
    s.add_argument("--failed", required=True, help="output: excluded samples with the reason")
    s.set_defaults(func=_qc)


def _index(args: argparse.Namespace) -> int:
    from bulkfm.quant.salmon import build_index

    build_index(args.transcripts, args.out, genome=args.genome, kmer=args.kmer,
                threads=args.threads, gencode=args.gencode,
                log_path=Path(args.out).with_name(Path(args.out).name + ".log"))
    return 0


def _genes(args: argparse.Namespace) -> int:
    from bulkfm.quant.reference import gene_order, read_gene_table, read_tx2gene, tx2gene_from_fasta

    tx2gene = read_tx2gene(args.tx2gene) if args.tx2gene else tx2gene_from_fasta(args.transcripts)
    table = read_gene_table(args.gene_table) if args.gene_table else None
    genes = gene_order(tx2gene, table)
    with atomic_path(args.out) as tmp:
        tmp.mkdir()
        tx2gene.to_parquet(tmp / "tx2gene.parquet", index=False)
        genes.to_parquet(tmp / "genes.parquet", index=False)
    log.info("%d transcripts, %d genes (%d protein-coding)", len(tx2gene), len(genes),
             int((genes["gene_type"] == "protein_coding").sum()))
    return 0


def _batch(args: argparse.Namespace) -> int:
    from bulkfm.quant.batch import BatchSettings, run_batch
    from bulkfm.quant.qc import QCThresholds
    from bulkfm.samples import SampleSheetError, batch_members, check_sheet, read_sheet, samples_from_sheet

    try:
        samples = samples_from_sheet(check_sheet(read_sheet(args.sheet), str(args.sheet)))
        members = batch_members(samples, args.batch, args.batch_size)
    except SampleSheetError as exc:
        raise UserError(str(exc)) from None
    settings = BatchSettings(
        index=Path(args.index), reference=Path(args.reference), outdir=Path(args.outdir),
        threads=args.threads, libtype=args.libtype,
        qc=QCThresholds(min_mapping_rate=args.min_mapping_rate, min_reads_processed=args.min_reads,
                        min_reads_mapped=args.min_mapped, library_type=args.library_type),
        on_error=args.on_error, keep_fastq=args.keep_fastq, fastq_dir=Path(args.fastq_dir),
        transcript_quant=args.transcript_quant, check_fastq=not args.no_check_fastq,
        download=_download_settings(args.sra_config),
        fastq_urls=_ena_urls(Path(args.sheet)),
    )
    log.info("batch %s: %d samples", args.batch, len(members))
    from bulkfm.quant.aggregate import Tx2GeneMismatch

    try:
        table = run_batch(members, settings, Path(args.out))
    except Tx2GeneMismatch as exc:
        raise UserError(str(exc)) from None
    counts = table["status"].value_counts().to_dict()
    log.info("batch %s done: %s", args.batch, counts)
    return 0


def _download_settings(value: str | None) -> dict:
    from bulkfm.sra.config import SraConfig

    try:
        kw = SraConfig.parse(value).download_kwargs()
    except (OSError, ValueError) as exc:
        raise UserError(f"bad sra config: {exc}") from None
    kw.pop("threads", None)  # the batch's --threads applies
    return kw


def _ena_urls(sheet: Path) -> dict[str, tuple[list[str], list[str] | None]]:
    """ENA FASTQ URLs and md5s per run, when the batch reads a resolved runs table."""
    if sheet.suffix != ".parquet":
        return {}
    import pyarrow.parquet as pq

    cols = set(pq.read_schema(sheet).names)
    if not {"run", "fastq_ftp", "fastq_md5"} <= cols:
        return {}
    table = pd.read_parquet(sheet, columns=["run", "fastq_ftp", "fastq_md5"]).dropna(subset=["fastq_ftp"])
    return {r: (str(u).split(";"), str(m).split(";") if isinstance(m, str) and m else None)
            for r, u, m in zip(table["run"], table["fastq_ftp"], table["fastq_md5"]) if u}


def _rebase_genes(table: pd.DataFrame, batch: str, qc: str) -> pd.DataFrame:
    """Gene-vector paths are relative to the table that holds them: from the batch table's
    directory to qc.tsv's."""
    if "genes" in table.columns:
        src, dst = Path(batch).parent, Path(qc).parent
        table["genes"] = [os.path.relpath(src / g, dst) if isinstance(g, str) and g else g
                          for g in table["genes"]]
    return table


def _qc(args: argparse.Namespace) -> int:
    from bulkfm.quant.batch import BATCH_COLUMNS

    frames = [_rebase_genes(pd.read_csv(p, sep="\t", dtype={"reason": str, "genes": str}), p,
                            args.qc) for p in args.batches]
    table = pd.concat(frames, ignore_index=True).reindex(columns=BATCH_COLUMNS)
    failed = table[table["status"] != "pass"][["sample", "run", "status", "reason"]]
    with atomic_path(args.qc) as tmp:
        table.to_csv(tmp, sep="\t", index=False)
    with atomic_path(args.failed) as tmp:
        failed.to_csv(tmp, sep="\t", index=False)
    log.info("%d samples: %d pass, %d excluded (listed in %s)", len(table),
             int((table["status"] == "pass").sum()), len(failed), args.failed)
    return 0
