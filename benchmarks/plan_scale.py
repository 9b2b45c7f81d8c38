"""Planning cost: `snakemake -n` wall time and peak memory for N run accessions.

Compares bulkfm (per-batch jobs with per-sample completion markers) with plain Snakemake (one
job per sample, a one-rule workflow written here). Prints a markdown table.

    python benchmarks/plan_scale.py --sizes 10000 100000 500000 --plain-sizes 10000 100000
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PLAIN = """
import pandas as pd
RUNS = pd.read_csv(config["samples"], sep="\\t")["accession"].tolist()
rule all:
    input: expand("q/{run}/quant.sf", run=RUNS)
rule quant:
    output: "q/{run}/quant.sf"
    shell: "touch {output}"
"""


def write_sheet(path: Path, n: int) -> None:
    with open(path, "w") as fh:
        fh.write("accession\n")
        fh.writelines(f"SRR{10_000_000 + i}\n" for i in range(n))


def timed(cmd: list[str], cwd: Path) -> tuple[float, float, str]:
    t = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "MAXRSS %M", *cmd], cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    rss_kb = float(re.findall(r"MAXRSS (\d+)", proc.stderr)[-1])
    jobs = re.findall(r"^total\s+(\d+)", proc.stdout, re.M)
    return wall, rss_kb / 1024, jobs[-1] if jobs else "?"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 500_000])
    ap.add_argument("--plain-sizes", type=int, nargs="*", default=[10_000, 100_000])
    args = ap.parse_args()
    snakemake = str(Path(sys.executable).with_name("snakemake"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for n in sorted(set(args.sizes) | set(args.plain_sizes)):
            sheet = tmp / f"sheet_{n}.tsv"
            write_sheet(sheet, n)
            if n in args.sizes:
                wall, mb, jobs = timed([snakemake, "-n", "--cores", "2", "--quiet", "all", "--config",
                                        f"samples={sheet}", f"outdir={tmp}/out", "allow_demo_defaults=true"], REPO)
                rows.append(("bulkfm (batches of 500)", n, jobs, wall, mb))
            if n in args.plain_sizes:
                wf = tmp / "plain"
                wf.mkdir(exist_ok=True)
                (wf / "Snakefile").write_text(PLAIN)
                wall, mb, jobs = timed([snakemake, "-n", "--cores", "2", "--quiet", "all", "--config",
                                        f"samples={sheet}"], wf)
                rows.append(("plain Snakemake (job per sample)", n, jobs, wall, mb))
    print("| workflow | samples | jobs | `snakemake -n` wall (s) | peak RSS (MB) | per sample |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, n, jobs, wall, mb in rows:
        print(f"| {name} | {n:,} | {jobs} | {wall:.1f} | {mb:,.0f} | {wall / n * 1e6:.0f} µs, {mb * 1024 / n:.1f} KB |")


if __name__ == "__main__":
    main()
