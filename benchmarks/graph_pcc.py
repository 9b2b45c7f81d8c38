"""PCC graph build vs a plain BLAS GEMM of the same shapes; prints a markdown table.

    python benchmarks/graph_pcc.py --genes 20000 --samples 10000 --threads 2

Data: random, written once as a bulkfm matrix store (memory-mapped float32 .npy, so the graph
reads it the way it reads real data). Low rank plus noise so that real edges exist:
``x = max(0, 3 + F @ L + 0.5 eps)``, F [samples, 32] and L [32, genes] standard normal scaled by
0.3, eps standard normal, 1% of genes constant. Each measurement runs in its own process
(peak RSS = ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` of that process); timings are the
minimum over ``--repeats`` runs, alternating GEMM and graph so that a busy neighbour on the
machine penalises both alike.

Rows:
* ``GEMM Z^T Z``: torch.mm of the standardised [samples, genes] matrix with itself -> the full
  [genes, genes] correlation matrix; the floor for any exact all-pairs method.
* ``graph, in-memory``: ``pcc_topk`` end to end from the store (stats pass, standardise,
  chunked GEMMs, top-k and threshold per chunk).
* ``graph, streamed``: the same with a memory budget too small to hold the train matrix.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path


def make_store(path: Path, n_samples: int, n_genes: int, seed: int = 0) -> None:
    import numpy as np
    import pandas as pd

    from bulkfm.matrix.store import MatrixWriter

    if (path / "matrix.json").exists():
        return
    rng = np.random.default_rng(seed)
    loadings = (rng.standard_normal((32, n_genes)) * 0.3).astype(np.float32)
    constant = rng.random(n_genes) < 0.01
    genes = pd.DataFrame({"gene_id": [f"G{i:05d}" for i in range(n_genes)]})
    genes["gene_name"] = genes["gene_id"]
    samples = pd.DataFrame({"sample_id": [f"S{i:06d}" for i in range(n_samples)]})
    w = MatrixWriter(path, genes, samples, layers=("log1p_tpm",))
    for start in range(0, n_samples, 1000):
        n = min(1000, n_samples - start)
        factors = rng.standard_normal((n, 32)).astype(np.float32)
        x = 3.0 + factors @ loadings + 0.5 * rng.standard_normal((n, n_genes), dtype=np.float32)
        x[:, constant] = 2.0
        w.write(start, log1p_tpm=np.maximum(x, 0.0))
    w.close()


def measure(kind: str, store: Path, threads: int, budget_gb: float) -> dict:
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    from bulkfm.graph.pcc import pcc_topk
    from bulkfm.matrix.store import open_matrix

    m = open_matrix(store)
    rows = np.arange(m.shape[0])
    u0 = resource.getrusage(resource.RUSAGE_SELF)
    out: dict = {"kind": kind, "_cpu0": u0.ru_utime + u0.ru_stime}
    if kind == "gemm":
        z = torch.from_numpy(np.array(m.rows(rows)))  # a copy: the store is a read-only memmap
        z -= z.mean(0)
        z /= z.norm(dim=0).clamp_min(1e-12)
        u0 = resource.getrusage(resource.RUSAGE_SELF)
        out["_cpu0"] = u0.ru_utime + u0.ru_stime
        t = time.perf_counter()
        c = torch.mm(z.T, z)  # [genes, genes]
        out["seconds"] = time.perf_counter() - t
        out["check"] = float(c[0, 0])
    else:
        t = time.perf_counter()
        r = pcc_topk(m, rows, max_memory_gb=budget_gb, progress=False)
        out["seconds"] = time.perf_counter() - t
        out.update(mode=r.mode, chunk=r.chunk_genes, passes=r.passes, edges=len(r.edges.pcc))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out["peak_rss_gb"] = usage.ru_maxrss / 2**20
    out["cpu_seconds"] = usage.ru_utime + usage.ru_stime - out.pop("_cpu0")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--genes", type=int, default=20000)
    p.add_argument("--samples", type=int, default=10000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--stream-budget-gb", type=float, default=1.2,
                   help="budget for the streamed row: below 2x the train matrix (0.8 GB here)")
    p.add_argument("--previous", default=None,
                   help="stderr of an earlier run: reuse its measurements (JSON lines)")
    p.add_argument("--workdir", default="/tmp/bulkfm-bench-graph")
    p.add_argument("--_measure", default=None, help=argparse.SUPPRESS)
    p.add_argument("--_budget", type=float, default=8.0, help=argparse.SUPPRESS)
    args = p.parse_args()
    store = Path(args.workdir) / f"store_{args.samples}x{args.genes}"
    if args._measure:
        print(json.dumps(measure(args._measure, store, args.threads, args._budget)))
        return
    t = time.perf_counter()
    make_store(store, args.samples, args.genes)
    print(f"data: {store} ({time.perf_counter() - t:.0f} s to write)", file=sys.stderr)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}

    def run(kind: str, budget: float) -> dict:
        cmd = [sys.executable, __file__, "--genes", str(args.genes), "--samples", str(args.samples),
               "--threads", str(args.threads), "--workdir", args.workdir, "--_measure", kind,
               "--_budget", str(budget)]
        res = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True,
                                        env=env).stdout.strip().splitlines()[-1])
        print(json.dumps(res), file=sys.stderr)
        return res

    results: dict[str, list[dict]] = {"gemm": [], "graph": [], "stream": []}
    if args.previous:  # rows measured by an earlier run (the JSON lines it printed to stderr)
        for line in Path(args.previous).read_text().splitlines():
            if line.startswith("{"):
                r = json.loads(line)
                results["stream" if r.get("mode") == "streamed" else r["kind"]].append(r)
    for _ in range(args.repeats):
        results["gemm"].append(run("gemm", 8.0))
        results["graph"].append(run("graph", 8.0))
    if not results["stream"]:
        results["stream"].append(run("graph", args.stream_budget_gb))
    best = {k: min(v, key=lambda r: r["seconds"]) for k, v in results.items()}
    gemm = best["gemm"]["seconds"]
    flops = 2 * args.samples * args.genes**2
    print(f"\nPCC graph, {args.genes:,} genes x {args.samples:,} samples, {args.threads} threads, "
          f"top-k 20, min PCC 0.4 (best of {len(results['gemm'])}; streamed: "
          f"{len(results['stream'])} run)\n")
    gemm_cpu = best["gemm"]["cpu_seconds"]
    print("| what | wall s | wall vs GEMM | CPU s | CPU vs GEMM | GFLOP/s (GEMM-equiv., wall) "
          "| peak RSS GB | notes |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| GEMM Z^T Z (torch.mm, MKL) | {gemm:.1f} | 1.00x | {gemm_cpu:.1f} | 1.00x | "
          f"{flops / gemm / 1e9:.0f} | {best['gemm']['peak_rss_gb']:.2f} | full [genes, genes] "
          "output |")
    for key, label in (("graph", "graph, in-memory"), ("stream", "graph, streamed")):
        r = best[key]
        print(f"| {label} | {r['seconds']:.1f} | {r['seconds'] / gemm:.2f}x | "
              f"{r['cpu_seconds']:.1f} | {r['cpu_seconds'] / gemm_cpu:.2f}x | "
              f"{flops / r['seconds'] / 1e9:.0f} | {r['peak_rss_gb']:.2f} | chunk {r['chunk']} "
              f"genes, {r['passes']} read(s) of the matrix, {r['edges']:,} edges |")


if __name__ == "__main__":
    main()
