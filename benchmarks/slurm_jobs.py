"""Scheduler pressure at scale: how many SLURM jobs (sbatch calls) the workflow submits for N
samples under profiles/slurm, from the real DAG (`snakemake -n`, no cluster needed).

Every job of the DAG is one sbatch job except `all`; with the profile's `slurm-array-jobs:
quant_batch`, all quantification batches that are ready together go in job arrays of at most
`slurm-array-limit` tasks (the plugin's default 1000), i.e. one sbatch call per array.

    python benchmarks/slurm_jobs.py --sizes 10000 100000 500000
"""

from __future__ import annotations

import argparse
import math
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOCAL = {"all"}


def write_sheet(path: Path, n: int) -> None:
    with open(path, "w") as fh:
        fh.write("accession\n")
        fh.writelines(f"SRR{10_000_000 + i}\n" for i in range(n))


def job_stats(text: str) -> dict[str, int]:
    table = text.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    rows = [line.split() for line in table.splitlines()[3:]]
    return {r[0]: int(r[1]) for r in rows if len(r) == 2 and r[0] != "total"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 500_000])
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--array-limit", type=int, default=1000)
    args = ap.parse_args()
    snakemake = str(Path(sys.executable).with_name("snakemake"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            sheet = Path(tmp) / f"sheet_{n}.tsv"
            write_sheet(sheet, n)
            cfg = Path(tmp) / f"config_{n}.yaml"
            cfg.write_text(f"samples: {sheet}\noutdir: {tmp}/out_{n}\nquant:\n  batch_size: {args.batch_size}\n")
            t = time.perf_counter()
            proc = subprocess.run(
                ["/usr/bin/time", "-f", "MAXRSS %M", snakemake, "-n", "--profile", "profiles/slurm",
                 "--quiet", "rules", "--configfile", str(cfg)],
                cwd=REPO, capture_output=True, text=True)
            wall = time.perf_counter() - t
            if proc.returncode != 0:
                raise SystemExit(proc.stdout[-2000:] + proc.stderr[-2000:])
            stats = job_stats(proc.stdout + proc.stderr)
            rss = float(re.findall(r"MAXRSS (\d+)", proc.stderr)[-1]) / 1024
            batches = stats.get("quant_batch", 0)
            jobs = sum(c for r, c in stats.items() if r not in LOCAL)
            arrays = math.ceil(batches / args.array_limit)
            rows.append((n, batches, jobs, jobs - batches + arrays, wall, rss, stats))
    print(f"| samples | batch jobs (batch_size {args.batch_size}) | SLURM jobs | sbatch calls (batches as arrays) "
          "| `snakemake -n` wall (s) | peak RSS (MB) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n, b, jobs, calls, wall, rss, _ in rows:
        print(f"| {n:,} | {b:,} | {jobs:,} | {calls:,} | {wall:.1f} | {rss:,.0f} |")
    print()
    print("Jobs per rule at the largest size: " + ", ".join(f"{r} {c}" for r, c in rows[-1][6].items()))


if __name__ == "__main__":
    main()
