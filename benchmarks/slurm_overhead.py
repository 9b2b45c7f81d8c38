"""Wall time of the demo's quantification part (salmon index -> quant batches -> qc -> matrix)
through `snakemake --profile profiles/slurm` on the local one-node cluster vs `--cores 2` locally,
each from scratch. Needs root (it starts the cluster with scripts/slurm/start.sh, and leaves it
running). The profile is fitted to the node the way a site would (threads/memory/first poll).

    sudo python benchmarks/slurm_overhead.py [--batch-size 2]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def fitted_profile(dest: Path, cpus: int) -> Path:
    cfg = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    cfg["set-threads"] = {r: min(n, cpus) for r, n in cfg["set-threads"].items()}
    for res in cfg["set-resources"].values():
        if "cpus_per_task" in res:
            res["cpus_per_task"] = min(res["cpus_per_task"], cpus)
        res["mem_mb"] = "1000 * attempt"
    cfg["slurm-init-seconds-before-status-checks"] = 2
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "config.yaml").write_text(yaml.safe_dump(cfg))
    return dest


def run(args: list[str]) -> float:
    exe = str(Path(sys.executable).with_name("snakemake"))
    t = time.perf_counter()
    proc = subprocess.run([exe, *args], cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(proc.stdout[-2000:] + proc.stderr[-3000:])
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--batch-size", type=int, default=2)
    args = ap.parse_args()
    subprocess.run(["bash", str(REPO / "scripts" / "slurm" / "start.sh")], check=True)
    cpus = int(subprocess.run(["nproc"], capture_output=True, text=True).stdout)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        profile = fitted_profile(tmp / "profile", cpus)
        for mode in ("local", "slurm"):
            out = tmp / mode
            cfg = tmp / f"{mode}.yaml"
            cfg.write_text(yaml.safe_dump({"outdir": str(out), "quant": {"batch_size": args.batch_size}}))
            how = ["--cores", str(cpus)] if mode == "local" else ["--profile", str(profile)]
            wall = run([*how, "--configfile", str(cfg), "--", f"{out}/qc/qc.tsv", f"{out}/matrix"])
            rows.append((mode, wall))
    local = rows[0][1]
    print("| execution | wall (s) | overhead vs local |")
    print("|---|---:|---:|")
    for mode, wall in rows:
        print(f"| {mode} | {wall:.0f} | {wall - local:+.0f} s ({wall / local:.1f}x) |")
    print(f"\n6 jobs in 5 DAG levels (salmon_index, reference_genes, {4 // args.batch_size} quant_batch, "
          f"quant_qc, matrix); {cpus} CPUs.")


if __name__ == "__main__":
    main()
