"""``bulkfm sra resolve|download|check``: accessions -> run table, run -> FASTQ, FASTQ sanity."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import pandas as pd

from bulkfm.cli import UserError
from bulkfm.samples import (SampleSheetError, check_sheet, local_metadata, read_sheet,
                            sheet_accessions)
from bulkfm.sra.accessions import AccessionError
from bulkfm.sra.config import SraConfig
from bulkfm.sra.download import METHODS, DownloadError, fetch_fastq
from bulkfm.sra.fastq import FastqError, check_fastq
from bulkfm.sra.net import NetworkError
from bulkfm.sra.resolve import ResolveError, resolve, write_metadata

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "sra",
        help="resolve accessions to runs, download FASTQ, check FASTQ",
        description="SRA/ENA/GEO stage: accessions -> sra/metadata.parquet, runs -> FASTQ.",
    )
    sub = p.add_subparsers(dest="sra_command", metavar="SUBCOMMAND", required=True)

    r = sub.add_parser(
        "resolve",
        help="accessions (SRR/SRX/SRS/SAMN/SRP/PRJNA/PRJEB/GSE/GSM...) -> one row per run (Parquet)",
        description="Resolve any mix of accessions to runs via NCBI SRA (pysradb), with ENA as fallback. "
        "Runs that are not human bulk RNA-seq are kept with an excluded_reason.",
    )
    r.add_argument("accessions", nargs="*", metavar="ACC", help="accessions (case-insensitive)")
    r.add_argument("--sheet", type=Path, help="the workflow's sample sheet (TSV/CSV: accession or fastq_1 per row); local-FASTQ rows get their metadata from the sheet's columns")
    r.add_argument("-o", "--output", type=Path, required=True, help="output Parquet, e.g. results/sra/metadata.parquet")
    r.add_argument("--no-human-filter", action="store_true", help="keep every run (no excluded_reason)")
    r.add_argument("--config", type=Path, help="YAML with an sra: block (or the block itself)")
    r.add_argument("--cache", type=Path, help="per-accession answer cache, so a rerun only asks for what is missing "
                   "(default: OUTPUT's folder/.resolve_cache; 'none' to disable)")
    r.set_defaults(func=_resolve)

    d = sub.add_parser(
        "download",
        help="fetch one run's FASTQ (ENA HTTPS with md5, or prefetch + fasterq-dump)",
        description="Download a run's FASTQ into DIR atomically; a rerun resumes or skips a complete run.",
    )
    d.add_argument("run", metavar="RUN", help="run accession (SRR/ERR/DRR)")
    d.add_argument("-o", "--outdir", type=Path, required=True, help="destination folder")
    d.add_argument("--method", choices=METHODS, help="default: sra.download_method (auto)")
    d.add_argument("--metadata", type=Path, help="metadata.parquet from 'sra resolve' (ENA URLs and md5s)")
    d.add_argument("--sra-file", type=Path, help="use this local .sra instead of prefetch")
    d.add_argument("--threads", type=int, help="fasterq-dump threads")
    d.add_argument("--tmp-dir", type=Path, help="work folder (default: inside OUTDIR)")
    d.add_argument("--config", type=Path, help="YAML with an sra: block")
    d.set_defaults(func=_download)

    c = sub.add_parser(
        "check",
        help="check FASTQ (gzip integrity, record structure, mate pairing) before quantification",
        description="Stream 1 or 2 FASTQ files once; exit 2 with a message naming the problem and fix.",
    )
    c.add_argument("fastq", nargs="+", type=Path, metavar="FASTQ", help="1 file (single-end) or 2 (paired)")
    c.add_argument("--sample", help="sample name for messages (default: first file's name)")
    c.add_argument("--json", type=Path, help="write the stats as JSON here")
    c.set_defaults(func=_check)


def _config(path: Path | None) -> SraConfig:
    """The sra settings: a YAML file, or the block as JSON text (how the workflow passes it)."""
    try:
        return SraConfig.parse(path)
    except (OSError, ValueError) as exc:
        raise UserError(f"bad sra config: {exc}") from exc


def _resolve(args: argparse.Namespace) -> int:
    cfg = _config(args.config)
    sheet = _sheet(args.sheet) if args.sheet else None
    accs = list(args.accessions) + (sheet_accessions(sheet) if sheet is not None else [])
    local = local_metadata(sheet) if sheet is not None else pd.DataFrame()
    if not accs and local.empty:
        raise UserError("give accessions or --sheet with an 'accession' column")
    if not accs:  # only local FASTQ: their metadata is the sheet's columns, no network needed
        write_metadata(local, args.output)
        print(f"{len(local)} local samples -> {args.output}", file=sys.stderr)
        return 0
    kw = cfg.resolve_kwargs()
    if args.no_human_filter:
        kw.update(human_rnaseq_only=False, run_filter=None)
    cache = args.cache if args.cache is not None else args.output.parent / ".resolve_cache"
    if str(cache).lower() == "none":
        cache = None
    try:
        df = resolve(accs, cache_dir=cache, **kw)
    except (AccessionError, ResolveError, NetworkError) as exc:
        raise UserError(str(exc)) from exc
    if not local.empty:
        df = pd.concat([df, local], ignore_index=True)
    write_metadata(df, args.output)
    kept = int(df["excluded_reason"].isna().sum())
    print(f"{len(df)} runs ({kept} kept, {len(df) - kept} excluded) -> {args.output}", file=sys.stderr)
    return 0


def _sheet(path: Path) -> pd.DataFrame:
    """The sample sheet, read and checked once by the reader every stage uses."""
    try:
        return check_sheet(read_sheet(path), str(path))
    except SampleSheetError as exc:
        raise UserError(str(exc)) from exc


def _download(args: argparse.Namespace) -> int:
    cfg = _config(args.config)
    kw = cfg.download_kwargs()
    if args.method:
        kw["method"] = args.method
    if args.threads:
        kw["threads"] = args.threads
    run = args.run.strip().upper()
    if args.metadata:
        meta = pd.read_parquet(args.metadata, columns=["run", "fastq_ftp", "fastq_md5"])
        hit = meta[meta["run"] == run]
        if len(hit) and pd.notna(hit.iloc[0]["fastq_ftp"]):
            kw["ena_urls"] = str(hit.iloc[0]["fastq_ftp"]).split(";")
            md5 = hit.iloc[0]["fastq_md5"]
            kw["md5s"] = str(md5).split(";") if pd.notna(md5) else None
    try:
        files = fetch_fastq(run, args.outdir, tmp_dir=args.tmp_dir, sra_path=args.sra_file, **kw)
    except (AccessionError, DownloadError, NetworkError, ValueError) as exc:
        raise UserError(str(exc)) from exc
    for f in files:
        print(f)
    return 0


def _check(args: argparse.Namespace) -> int:
    sample = args.sample or args.fastq[0].name.split(".")[0]
    try:
        stats = check_fastq(list(args.fastq), sample)
    except FastqError as exc:
        raise UserError(str(exc)) from exc
    text = json.dumps(stats.as_dict(), indent=1)
    if args.json:
        from bulkfm.common.atomic import write_text_atomic

        write_text_atomic(args.json, text + "\n")
    print(text)
    return 0
