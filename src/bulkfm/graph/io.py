"""Read and write the gene graph: a directed edge list in Parquet.

Schema (one row per edge, written by ``bulkfm graph build``)::

    source  string   gene id as in the matrix's ``.genes``
    target  string   one of source's top-k neighbours
    pcc     float32  Pearson correlation over the train samples (signed)

Directed: each source gene lists its own top-k, so A->B may exist without B->A.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from bulkfm.common.atomic import atomic_path
from bulkfm.embed.gene_ids import match_genes

log = logging.getLogger(__name__)

EDGE_SCHEMA = pa.schema(
    [("source", pa.string()), ("target", pa.string()), ("pcc", pa.float32())]
)


def write_edges(path: str | os.PathLike[str], source: Sequence[str], target: Sequence[str],
                pcc: np.ndarray, metadata: dict[str, str] | None = None) -> Path:
    """Write the edge list atomically; ``metadata`` goes into the Parquet key-value metadata."""
    table = pa.table(
        {"source": pa.array(source, pa.string()), "target": pa.array(target, pa.string()),
         "pcc": pa.array(np.asarray(pcc, dtype=np.float32), pa.float32())},
        schema=EDGE_SCHEMA,
    )
    if metadata:
        table = table.replace_schema_metadata({f"bulkfm.{k}": str(v) for k, v in metadata.items()})
    path = Path(path)
    with atomic_path(path, suffix=".parquet") as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return path


def load_graph(
    path: str | os.PathLike[str],
    genes: list[str],
    *,
    strict: bool = True,
    gene_names: Sequence[str] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Edge list -> ``(edge_index [2, E] int64, edge_weight [E] float32)`` indexing ``genes``.

    Row 0 is the source, row 1 the target. Graph genes are matched to ``genes`` by exact id,
    else by a unique normalised id (``SYMBOL|ENTREZ`` -> symbol, Ensembl version dropped; see
    :mod:`bulkfm.embed.gene_ids`); ``gene_names`` (symbols aligned with ``genes``, e.g. a
    store's ``gene_names``) widen the fallback. Graph genes absent from ``genes`` raise
    ``ValueError`` unless ``strict=False``, which drops their edges with a logged count.
    Genes without edges are isolated nodes (counted in the log).
    """
    path = Path(path)
    source, target, weight = _read_edges(path)
    graph_genes, inverse = np.unique(np.concatenate([source, target]), return_inverse=True)
    name_aliases = None if gene_names is None else [[n] for n in gene_names]
    # Map each graph gene onto `genes` (the reference, where a fallback key must be unique).
    match = match_genes(graph_genes.tolist(), genes, reference_aliases=name_aliases)
    to_node = np.asarray(match.index, dtype=np.int64)
    unmatched = graph_genes[to_node < 0]
    if len(unmatched):
        example = ", ".join(map(str, unmatched[:5]))
        if strict:
            raise ValueError(
                f"{path}: {len(unmatched)} of {len(graph_genes)} graph genes are not among the "
                f"{len(genes)} model genes (e.g. {example}); rebuild the graph from the same "
                "matrix, or pass strict=False to drop their edges"
            )
        log.warning("%s: dropping edges of %d graph genes absent from the gene list (e.g. %s)",
                    path, len(unmatched), example)
    if match.n_normalized:
        log.info("%s: %d graph genes matched by normalised id (symbol / unversioned Ensembl)",
                 path, match.n_normalized)

    src = to_node[inverse[: len(source)]]
    dst = to_node[inverse[len(source):]]
    keep = (src >= 0) & (dst >= 0)
    if (~keep).any():
        log.warning("%s: dropped %d of %d edges touching unknown genes", path,
                    int((~keep).sum()), len(keep))
    merged = keep & (src == dst)  # two graph ids that name one model gene
    if merged.any():
        log.warning("%s: dropped %d self-loops from graph ids naming the same gene", path,
                    int(merged.sum()))
        keep &= ~merged
    edge_index = torch.from_numpy(np.stack([src[keep], dst[keep]]))
    edge_weight = torch.from_numpy(weight[keep].copy())
    n_isolated = len(genes) - int(torch.unique(edge_index).numel())
    log.info("%s: %d edges over %d genes; %d genes isolated (no edges)", path,
             edge_index.shape[1], len(genes), n_isolated)
    return edge_index, edge_weight


def _read_edges(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """-> (source ids, target ids, pcc) of a bulkfm edge list, checked."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: gene graph not found; build it with `bulkfm graph build`")
    table = pq.read_table(path)
    missing_cols = {"source", "target", "pcc"} - set(table.column_names)
    if missing_cols:
        raise ValueError(f"{path}: not a bulkfm edge list, missing columns {sorted(missing_cols)} "
                         "(expected source, target, pcc)")
    source = table.column("source").to_numpy(zero_copy_only=False).astype(str)
    target = table.column("target").to_numpy(zero_copy_only=False).astype(str)
    weight = table.column("pcc").to_numpy(zero_copy_only=False).astype(np.float32)
    if not np.isfinite(weight).all():
        raise ValueError(f"{path}: {int((~np.isfinite(weight)).sum())} non-finite pcc values; "
                         "rebuild the graph")
    return source, target, weight
