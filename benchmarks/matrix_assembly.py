"""Matrix assembly throughput and memory vs number of samples.

Per-sample gene vectors like the quant jobs write (float32 [3, genes]: counts, TPM, length) for
a GENCODE-sized reference (default 62,700 genes, of which 20,000 protein-coding are kept) are
stacked into a matrix store by ``bulkfm.matrix.build.build_matrix``. ``--distinct`` vector files
are generated and reused cyclically for larger N (disk), so reads come from the page cache:
this measures the CPU/memory path, not a cluster file system. Each N runs in a fresh process;
peak RSS is that process's ru_maxrss.

    python benchmarks/matrix_assembly.py --sizes 1000 10000 30000 100000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def child(n: int, vec_dir: Path, out: Path, distinct: int) -> None:
    from bulkfm.matrix.build import build_matrix

    genes = pd.read_parquet(vec_dir / "genes.parquet")
    paths = [vec_dir / f"v{i % distinct}.npy" for i in range(n)]
    samples = pd.DataFrame({"sample_id": [f"S{i}" for i in range(n)]})
    t = time.perf_counter()
    build_matrix(samples, paths, genes, out, progress=False)
    wall = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"n": n, "wall": wall, "rss_mb": rss}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 30000, 100000])
    ap.add_argument("--genes", type=int, default=62700)
    ap.add_argument("--kept", type=int, default=20000)
    ap.add_argument("--distinct", type=int, default=2000)
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(int(args.child[0]), Path(args.child[1]), Path(args.child[2]), args.distinct)
        return
    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory(dir=".") as tmp:
        tmp = Path(tmp)
        types = np.array(["lncRNA"] * args.genes, dtype=object)
        types[rng.choice(args.genes, args.kept, replace=False)] = "protein_coding"
        pd.DataFrame({"gene_id": [f"ENSG{i:011d}" for i in range(args.genes)],
                      "gene_name": [f"G{i}" for i in range(args.genes)],
                      "gene_type": types}).to_parquet(tmp / "genes.parquet")
        for i in range(args.distinct):
            tpm = rng.gamma(0.3, 50, args.genes).astype(np.float32)
            np.save(tmp / f"v{i}.npy", np.stack([tpm * 3, tpm, np.full_like(tpm, 1500)]))
        for n in args.sizes:
            out = tmp / f"m{n}"
            proc = subprocess.run([sys.executable, __file__, "--distinct", str(args.distinct), "--child",
                                   str(n), str(tmp), str(out)], capture_output=True, text=True, check=True)
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            size_gb = sum(f.stat().st_size for f in out.iterdir()) / 1e9
            rows.append((n, r["wall"], n / r["wall"], r["rss_mb"], size_gb))
            for f in out.iterdir():
                f.unlink()
            out.rmdir()
    print(f"| samples | wall (s) | samples/s | peak RSS (MB) | store size (GB) |  ({args.genes:,} genes in, {args.kept:,} kept)")
    print("|---:|---:|---:|---:|---:|")
    for n, wall, rate, rss, gb in rows:
        print(f"| {n:,} | {wall:.1f} | {rate:,.0f} | {rss:,.0f} | {gb:.1f} |")


if __name__ == "__main__":
    main()
