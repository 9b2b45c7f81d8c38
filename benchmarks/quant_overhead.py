"""Workflow overhead per sample beyond Salmon's own time.

Builds ``--samples`` samples of ``--pairs`` read pairs each from the bundled real ENCODE reads
(repeated to reach the size), then times (a) plain ``salmon quant -l A --validateMappings`` per
sample, the baseline, and (b) ``bulkfm quant batch`` on the same samples (FASTQ check, salmon,
gene aggregation, QC, atomic writes, gzip of quant.sf). Overhead = (b - a) / a.

    python benchmarks/quant_overhead.py --samples 4 --pairs 1000000
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EX = REPO / "resources" / "example"


def make_fastq(src: Path, dst: Path, n_reads: int) -> None:
    with gzip.open(src, "rb") as fh:
        lines = fh.readlines()
    records = [lines[i : i + 4] for i in range(0, len(lines) - 3, 4)]
    with gzip.open(dst, "wb", compresslevel=1) as out:
        for k, rec in zip(range(n_reads), itertools.cycle(records)):
            out.write(b"".join(rec))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--pairs", type=int, default=1_000_000)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    bulkfm = str(Path(sys.executable).with_name("bulkfm"))
    with tempfile.TemporaryDirectory(dir=".") as tmp:
        tmp = Path(tmp)
        subprocess.run([bulkfm, "quant", "index", "--transcripts", str(EX / "Homo_sapiens.GRCh38.cdna.all.chr19_ERCC_phix.fa.gz"),
                        "-o", str(tmp / "idx")], check=True, capture_output=True)
        subprocess.run([bulkfm, "quant", "genes", "--transcripts", str(EX / "Homo_sapiens.GRCh38.cdna.all.chr19_ERCC_phix.fa.gz"),
                        "--tx2gene", str(EX / "tx2gene_chr19.tsv.gz"), "-o", str(tmp / "ref")], check=True, capture_output=True)
        r1 = tmp / "r1.fastq.gz"
        r2 = tmp / "r2.fastq.gz"
        make_fastq(EX / "reads" / "ENCSR653DFZ_rep1_chr19_10000reads_R1.fastq.gz", r1, args.pairs)
        make_fastq(EX / "reads" / "ENCSR653DFZ_rep1_chr19_10000reads_R2.fastq.gz", r2, args.pairs)
        rows = ["sample\tfastq_1\tfastq_2"] + [f"s{i}\t{r1}\t{r2}" for i in range(args.samples)]
        (tmp / "sheet.tsv").write_text("\n".join(rows) + "\n")

        t = time.perf_counter()
        for i in range(args.samples):
            subprocess.run(["salmon", "quant", "-i", str(tmp / "idx"), "-l", "A", "-1", str(r1), "-2", str(r2),
                            "--validateMappings", "-p", str(args.threads), "-o", str(tmp / f"plain{i}")],
                           check=True, capture_output=True)
        plain = time.perf_counter() - t

        t = time.perf_counter()
        subprocess.run([bulkfm, "quant", "batch", "--sheet", str(tmp / "sheet.tsv"), "--batch", "b00000",
                        "--batch-size", str(args.samples), "--index", str(tmp / "idx"), "--reference", str(tmp / "ref"),
                        "--outdir", str(tmp / "quant"), "-o", str(tmp / "b.tsv"), "--threads", str(args.threads)],
                       check=True, capture_output=True)
        ours = time.perf_counter() - t
    print(f"| samples | read pairs each | plain salmon (s) | bulkfm quant batch (s) | overhead |")
    print("|---:|---:|---:|---:|---:|")
    print(f"| {args.samples} | {args.pairs:,} | {plain:.1f} | {ours:.1f} | {100 * (ours - plain) / plain:+.1f} % |")


if __name__ == "__main__":
    main()
