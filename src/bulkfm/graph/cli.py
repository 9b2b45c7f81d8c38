"""``bulkfm graph build``: the PCC gene graph from the train split."""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import torch

from bulkfm.common.atomic import write_text_atomic

from bulkfm.cli import HelpFormatter

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "graph",
        help="gene co-expression (PCC) graph",
        description="Gene co-expression graph for the model's GCN layers.",
    )
    sub = p.add_subparsers(dest="graph_command", metavar="SUBCOMMAND", required=True)
    b = sub.add_parser(
        "build",
        help="per gene its top-k Pearson neighbours over the train samples",
        description=(
            "Pearson correlation of log1p(TPM) between genes over the train samples of SPLIT; "
            "for each gene its TOP_K strongest neighbours with correlation >= MIN_PCC (--sign "
            "positive) or |correlation| >= MIN_PCC (--sign abs). No self-loops; genes that never "
            "vary are isolated. Computed in gene chunks (one GEMM each), so all gene pairs are "
            "never in memory; streams samples when the train matrix exceeds --max-memory-gb. "
            "Writes the edge list (Parquet: source, target, pcc), a summary JSON and a degree "
            "histogram PNG."
        ),
        formatter_class=HelpFormatter,
    )
    b.add_argument("--matrix", required=True,
                   help="bulkfm matrix store directory, gene x sample .parquet or ARCHS4 .h5")
    b.add_argument("--split", default=None,
                   help="splits.tsv (sample_id, split); only 'train' samples are used. Omit to "
                        "use all samples (warns: leaks held-out samples into the graph)")
    b.add_argument("-o", "--output", required=True, help="edge list Parquet to write")
    b.add_argument("--summary", default=None, help="summary JSON [default: OUTPUT stem + "
                                                   ".summary.json]")
    b.add_argument("--plot", default=None, help="degree histogram PNG [default: OUTPUT stem + "
                                                ".degree.png]; 'none' to skip")
    b.add_argument("--top-k", type=int, default=20, help="neighbours kept per gene")
    b.add_argument("--min-pcc", type=float, default=0.4, help="weaker correlations are dropped")
    b.add_argument("--sign", choices=("positive", "abs"), default="positive",
                   help="positive: keep PCC >= MIN_PCC (BulkFormer's rule; weights stay valid "
                        "for GCN degree normalisation). abs: also keep strong negative "
                        "correlations (stored with their sign)")
    b.add_argument("--chunk-genes", type=int, default=None,
                   help="genes per correlation block [default: from --max-memory-gb]")
    b.add_argument("--batch-samples", type=int, default=1024, help="samples read per batch")
    b.add_argument("--max-memory-gb", type=float, default=8.0,
                   help="memory budget: the train matrix is held in memory when it takes at most "
                        "half of this, else streamed once per gene chunk")
    b.add_argument("--device", default="auto", help="auto (cuda if present), cpu, cuda, cuda:1")
    b.add_argument("--threads", type=int, default=None, help="CPU threads for torch/BLAS")
    b.set_defaults(func=run_build)


def run_build(args: argparse.Namespace) -> int:
    from bulkfm.cli import UserError
    from bulkfm.graph.device import resolve_device
    from bulkfm.graph.io import write_edges
    from bulkfm.graph.pcc import pcc_topk, train_indices
    from bulkfm.graph.summary import graph_summary, plot_degrees
    from bulkfm.matrix.store import open_matrix

    out = Path(args.output)
    summary_path = Path(args.summary) if args.summary else out.with_suffix(".summary.json")
    plot_path = None if args.plot == "none" else (
        Path(args.plot) if args.plot else out.with_suffix(".degree.png"))
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        device = resolve_device(args.device)
        matrix = open_matrix(args.matrix)
        rows = train_indices(args.split, matrix.samples)
        t0 = time.perf_counter()
        result = pcc_topk(matrix, rows, top_k=args.top_k, min_pcc=args.min_pcc, sign=args.sign,
                          chunk_genes=args.chunk_genes, batch_samples=args.batch_samples,
                          max_memory_gb=args.max_memory_gb, device=device)
    except (ValueError, FileNotFoundError) as exc:
        raise UserError(str(exc)) from exc
    seconds = time.perf_counter() - t0
    genes = matrix.genes
    e = result.edges
    params = {"top_k": args.top_k, "min_pcc": args.min_pcc, "sign": args.sign,
              "n_train_samples": len(rows), "matrix": str(args.matrix),
              "split": str(args.split) if args.split else ""}
    write_edges(out, [genes[i] for i in e.source], [genes[i] for i in e.target], e.pcc,
                metadata=params)
    summary = {**params, **graph_summary(e.source, e.target, e.pcc, len(genes),
                                         int(result.stats.constant.sum())),
               "mode": result.mode, "chunk_genes": result.chunk_genes,
               "reads_of_train_rows": result.passes, "device": str(device),
               "seconds": round(seconds, 2), "edges": str(out)}
    write_text_atomic(summary_path, json.dumps(summary, indent=2) + "\n")
    if plot_path is not None:
        plot_degrees(plot_path, e.source, e.target, len(genes), title=out.name)
    log.info("wrote %s: %d edges, %d of %d genes isolated (%d constant) in %.1f s", out,
             summary["n_edges"], summary["n_isolated_genes"], len(genes),
             summary["n_constant_genes"], seconds)
    return 0
