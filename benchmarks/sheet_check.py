"""Plan-time sample-sheet check (bulkfm.samples.check_sheet) on 500,000 rows: run accessions,
GEO samples (non-run accessions, the slow path before issue 16) and local FASTQ pairs.

    OMP_NUM_THREADS=1 python benchmarks/sheet_check.py [--rows 500000]

Prints seconds per sheet kind (best of 3). Results: benchmarks/results/sheet_check.md.
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

from bulkfm import samples as bs


def sheets(n: int) -> dict[str, pd.DataFrame]:
    empty = [""] * n
    return {
        "runs (SRR)": pd.DataFrame({"sample": empty, "accession": [f"SRR{1000000 + i}" for i in range(n)],
                                    "fastq_1": empty, "fastq_2": empty}),
        "GEO samples (GSM)": pd.DataFrame({"sample": empty, "accession": [f"GSM{1000000 + i}" for i in range(n)],
                                           "fastq_1": empty, "fastq_2": empty}),
        "local FASTQ pairs": pd.DataFrame({"sample": empty, "accession": empty,
                                           "fastq_1": [f"reads/s{i}_R1.fastq.gz" for i in range(n)],
                                           "fastq_2": [f"reads/s{i}_R2.fastq.gz" for i in range(n)]}),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=500_000)
    args = ap.parse_args()
    for name, df in sheets(args.rows).items():
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            bs.check_sheet(df)
            best = min(best, time.perf_counter() - t0)
        print(f"{name}: {args.rows} rows in {best:.2f} s")


if __name__ == "__main__":
    main()
