"""One batch job: for each sample, get reads → check → salmon quant → gene vector → QC.

Per-sample completion is the sample's directory under ``samples/``, which appears atomically
when everything in it is written; a rerun skips those samples, so a killed batch resumes where
it stopped. Downloaded FASTQ is deleted right after its sample is quantified (unless
``keep_fastq``), so a batch holds one sample's reads on disk at a time, not the batch's.

A sample that fails (bad FASTQ, download error, Salmon error) is recorded with the reason and
the fix, and the rest of the batch goes on (``on_error: exclude``), or the job stops at once
(``on_error: fail``). Failed samples are never marked done, and are listed in ``{batch}.retry``
beside the batch table, from which the workflow forces the batch to run again on the next plain
run (its finished samples are skipped), so a rerun tries them again.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bulkfm.common.atomic import atomic_path
from bulkfm.quant import salmon
from bulkfm.quant.aggregate import GeneAggregator, Tx2GeneMismatch, read_quant
from bulkfm.quant.qc import QCThresholds, qc_salmon_dir
from bulkfm.samples import Sample

log = logging.getLogger(__name__)

BATCH_COLUMNS = ["sample", "run", "status", "reason", "reads_processed", "reads_mapped",
                 "mapping_rate", "library_type", "strand_fraction_reverse",
                 "salmon_expected_format", "n_unmapped_transcripts", "seconds_total",
                 "seconds_salmon", "genes"]


@dataclass
class BatchSettings:
    index: Path
    reference: Path  # directory with genes.parquet and tx2gene.parquet
    outdir: Path  # results/quant
    threads: int = 2
    libtype: str = "A"
    salmon_args: list[str] = field(default_factory=list)
    qc: QCThresholds = field(default_factory=QCThresholds)
    on_error: str = "exclude"  # or "fail"
    keep_fastq: bool = False
    fastq_dir: Path = Path("results/fastq")
    transcript_quant: str = "gzip"  # gzip | plain | none: what to keep of quant.sf
    check_fastq: bool = True
    download: dict = field(default_factory=dict)  # passed to bulkfm.sra.download.fetch_fastq
    fastq_urls: dict = field(default_factory=dict)  # run -> (ENA URLs, md5s) from the runs table


def sample_dir(outdir: Path, sample: str) -> Path:
    return Path(outdir) / "samples" / sample


def _with_genes_path(record: dict, outdir: Path, table: Path) -> dict:
    """The batch table names the gene vector of each quantified sample (relative to the table's
    own directory, so a results directory can be moved): the matrix stacks what its input tables
    list, instead of rebuilding quant's directory layout."""
    if record.get("status") in ("pass", "fail_qc"):
        vector = sample_dir(outdir, record["sample"]) / "genes.npy"
        record["genes"] = os.path.relpath(vector, Path(table).parent)
    return record


def _fetch(sample: Sample, settings: BatchSettings) -> tuple[list[Path], bool]:
    """Local FASTQ, or download the run. Returns the paths and whether they are ours to delete."""
    if sample.run is None:
        paths = [Path(p) for p in sample.fastqs]
        for p in paths:
            if not p.exists():
                raise FileNotFoundError(f"sample {sample.sample}: FASTQ {p} does not exist; fix "
                                        "the path in the sample sheet (relative paths are read "
                                        "from the directory snakemake runs in)")
        return paths, False
    from bulkfm.sra.download import fetch_fastq

    dest = settings.fastq_dir / sample.sample
    urls, md5s = settings.fastq_urls.get(sample.run, (None, None))
    # Partial downloads live outside ``dest`` so that deleting a failed sample's folder keeps
    # them, and the next run resumes them (HTTP Range).
    paths = fetch_fastq(sample.run, dest, threads=settings.threads, ena_urls=urls, md5s=md5s,
                        tmp_dir=settings.fastq_dir / ".partial", **settings.download)
    return list(paths), not settings.keep_fastq


def process_sample(sample: Sample, settings: BatchSettings, aggregator: GeneAggregator) -> dict:
    t0 = time.perf_counter()
    fastqs, ours = _fetch(sample, settings)
    try:
        if settings.check_fastq:
            from bulkfm.sra.fastq import check_fastq

            check_fastq(fastqs, sample.sample)
        target = sample_dir(settings.outdir, sample.sample)
        with atomic_path(target) as tmp:
            t1 = time.perf_counter()
            salmon.quant(settings.index, fastqs, tmp, sample=sample.sample,
                         threads=settings.threads, libtype=settings.libtype,
                         extra_args=settings.salmon_args)
            t_salmon = time.perf_counter() - t1
            qc = qc_salmon_dir(tmp, settings.qc)
            vec = aggregator.aggregate(read_quant(tmp / "quant.sf"), sample.sample)
            np.save(tmp / "genes.npy", vec.stacked())
            _shrink_transcript_quant(tmp / "quant.sf", settings.transcript_quant)
            record = {"sample": sample.sample, "run": sample.run or "",
                      "status": "pass" if qc.passed else "fail_qc", **qc.to_dict(),
                      "n_unmapped_transcripts": vec.n_unmapped_transcripts,
                      "seconds_salmon": round(t_salmon, 3),
                      "seconds_total": round(time.perf_counter() - t0, 3)}
            record["reason"] = record.pop("reasons")
            record.pop("passed")
            (tmp / "qc.json").write_text(json.dumps(record, indent=1) + "\n")
        return record
    finally:
        if ours:
            shutil.rmtree(settings.fastq_dir / sample.sample, ignore_errors=True)


def _shrink_transcript_quant(quant_sf: Path, mode: str) -> None:
    if mode == "plain":
        return
    if mode == "gzip":
        with open(quant_sf, "rb") as src, gzip.open(quant_sf.with_suffix(".sf.gz"), "wb", 6) as dst:
            shutil.copyfileobj(src, dst)
    quant_sf.unlink()


# What one sample's input or tools can raise (FastqError, download errors, SalmonError, missing
# files). Anything else (ImportError, a bug) is not the sample's fault and stops the job.
SAMPLE_ERRORS = (OSError, ValueError, RuntimeError)


def _error_fix(exc: BaseException) -> str:
    name = type(exc).__name__
    return f"{name}: {exc}"


def run_batch(samples: list[Sample], settings: BatchSettings, out_tsv: Path,
              progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
    genes = pd.read_parquet(settings.reference / "genes.parquet")
    tx2gene = pd.read_parquet(settings.reference / "tx2gene.parquet")
    aggregator = GeneAggregator(tx2gene, genes)
    records = []
    for i, sample in enumerate(samples, 1):
        done = sample_dir(settings.outdir, sample.sample) / "qc.json"
        if done.exists():
            records.append(_with_genes_path(json.loads(done.read_text()), settings.outdir, out_tsv))
            log.info("[%d/%d] %s: already done, skipped", i, len(samples), sample.sample)
            continue
        try:
            record = process_sample(sample, settings, aggregator)
            log.info("[%d/%d] %s: %s (mapping %.1f%%, %d reads, salmon %.1fs)", i, len(samples),
                     sample.sample, record["status"], record["mapping_rate"],
                     record["reads_processed"], record["seconds_salmon"])
        except Tx2GeneMismatch:
            raise  # a reference problem, not a sample problem: every sample would fail
        except SAMPLE_ERRORS as exc:  # bad input, download or salmon failure: this sample only
            if settings.on_error == "fail":
                raise
            log.error("[%d/%d] %s: FAILED, excluded: %s", i, len(samples), sample.sample,
                      _error_fix(exc))
            record = {"sample": sample.sample, "run": sample.run or "", "status": "error",
                      "reason": _error_fix(exc).replace("\n", " | ")}
        records.append(_with_genes_path(record, settings.outdir, out_tsv))
        if progress:
            progress(i, len(samples))
    table = pd.DataFrame.from_records(records).reindex(columns=BATCH_COLUMNS)
    with atomic_path(out_tsv) as tmp:
        table.to_csv(tmp, sep="\t", index=False)
    write_retry_marker(out_tsv, table)
    return table


# Retries. A batch whose samples failed with an error (download, FASTQ, Salmon) must run again on
# the next plain run, but its table exists and is newer than its inputs, so Snakemake would not
# rerun it. The workflow therefore asks for the table of the batch's current *generation*:
# ``b00000.tsv`` first, ``b00000.r1.tsv`` after one run with errors, ``b00000.r2.tsv``... A run
# with errors bumps the generation in ``b00000.retry`` (a missing table: the next run retries,
# skipping finished samples); a clean run leaves it, so nothing reruns after a success.
# QC failures are results, not errors, and are not retried.
_GENERATION = re.compile(r"^(b\d+)(?:\.r(\d+))?\.tsv$")


def retry_marker(batches_dir: Path, batch: str) -> Path:
    return Path(batches_dir) / f"{batch}.retry"


def retry_generation(batches_dir: Path, batch: str) -> int:
    """The generation whose table the workflow needs for ``batch`` (0 = ``{batch}.tsv``)."""
    try:
        return int(retry_marker(batches_dir, batch).read_text().split("\n", 1)[0])
    except (FileNotFoundError, ValueError):
        return 0


def batch_table_name(batch: str, generation: int) -> str:
    return f"{batch}.tsv" if generation == 0 else f"{batch}.r{generation}.tsv"


def write_retry_marker(out_tsv: Path, table: pd.DataFrame) -> None:
    """After writing ``out_tsv``: errored samples bump the batch's generation (first line of the
    marker; the failed samples follow, for people)."""
    out_tsv = Path(out_tsv)
    m = _GENERATION.match(out_tsv.name)
    if m is None:  # a table outside the workflow's naming: nothing to retry through
        return
    batch, generation = m.group(1), int(m.group(2) or 0)
    failed = table.loc[table["status"] == "error", "sample"].astype(str).tolist()
    if failed:
        with atomic_path(retry_marker(out_tsv.parent, batch)) as tmp:
            tmp.write_text(f"{generation + 1}\n" + "\n".join(failed) + "\n")
    for g in range(generation):  # earlier generations' tables are superseded
        (out_tsv.parent / batch_table_name(batch, g)).unlink(missing_ok=True)