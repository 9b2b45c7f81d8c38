"""Read and write ``esm2.pt``: one ESM2 embedding per gene.

``torch.save`` of a dict holding only ``weights_only=True``-safe types (str, int, list, dict,
tensors), so it loads without trusting pickled code::

    format         "bulkfm-esm2"
    version        1
    genes          list[str]          gene ids as given to ``bulkfm embed-genes`` (row order)
    aliases        list[list[str]]    other names of each gene (symbol, Ensembl id) for matching
    embeddings     float32 [n, d]     mean over residues of the chosen layer; zeros if no protein
    has_protein    bool [n]
    protein_ids    list[str]          the protein used ("" where none)
    protein_lengths int64 [n]         residues of that protein (0 where none)
    model          str                checkpoint name, e.g. "esm2_t33_650M_UR50D"
    repr_layer     int                layer whose output was averaged
    n_layers_used  int                number of transformer layers run (= repr_layer)
    embed_dim      int
    max_residues   int                window length for long proteins (see esm2.py)
    long_proteins  str                how proteins longer than the window were embedded
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from bulkfm.common.atomic import atomic_path
from bulkfm.embed.gene_ids import match_genes

log = logging.getLogger(__name__)

FORMAT = "bulkfm-esm2"
VERSION = 1


def save_gene_embeddings(path: str | os.PathLike[str], record: dict[str, Any]) -> Path:
    """Validate and write an ``esm2.pt`` record atomically."""
    _validate(record, str(path))
    path = Path(path)
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save({"format": FORMAT, "version": VERSION, **record}, tmp)
    return path


def read_gene_embeddings(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The raw record, loaded with ``weights_only=True`` (no code runs from the file)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: gene embeddings not found; build them with "
                                "`bulkfm embed-genes` (or disable ESM2 in the config)")
    record = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ValueError(f"{path}: not a bulkfm ESM2 embedding file (format "
                         f"{record.get('format') if isinstance(record, dict) else type(record)!r})")
    _validate(record, str(path))
    return record


def _validate(record: dict[str, Any], where: str) -> None:
    for key in ("genes", "embeddings", "has_protein"):
        if key not in record:
            raise ValueError(f"{where}: missing {key!r}")
    emb, has = record["embeddings"], record["has_protein"]
    n = len(record["genes"])
    if emb.ndim != 2 or emb.shape[0] != n or emb.dtype != torch.float32:
        raise ValueError(f"{where}: embeddings must be float32 [{n}, d], got {emb.dtype} "
                         f"{tuple(emb.shape)}")
    if has.shape != (n,) or has.dtype != torch.bool:
        raise ValueError(f"{where}: has_protein must be bool [{n}]")
    if not torch.isfinite(emb).all():
        raise ValueError(f"{where}: non-finite embedding values; rebuild with `bulkfm embed-genes`")
    if len(set(record["genes"])) != n:
        raise ValueError(f"{where}: duplicate gene ids")


def load_gene_embeddings(
    path: str | os.PathLike[str],
    genes: list[str],
    *,
    gene_names: Sequence[str] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``esm2.pt`` aligned to ``genes``: ``(embeddings float32 [len(genes), d], has_protein bool)``.

    Genes match by exact id, else by a unique normalised id (``SYMBOL|ENTREZ`` -> symbol,
    Ensembl version dropped) against the file's ids and aliases; ``gene_names`` (symbols
    aligned with ``genes``, e.g. a store's ``gene_names``) widen the fallback. Genes not in the
    file, or in it without a protein, get a zero row and ``has_protein`` False (counted in the
    log) — the model decides what to put there.
    """
    record = read_gene_embeddings(path)
    aliases = record.get("aliases")
    query_aliases = None if gene_names is None else [[n] for n in gene_names]
    match = match_genes(genes, record["genes"], reference_aliases=aliases,
                        query_aliases=query_aliases)
    idx = torch.tensor(match.index, dtype=torch.long)
    found = idx >= 0
    emb_file: torch.Tensor = record["embeddings"]
    out = torch.zeros(len(genes), emb_file.shape[1], dtype=torch.float32)
    out[found] = emb_file[idx[found]]
    has = torch.zeros(len(genes), dtype=torch.bool)
    has[found] = record["has_protein"][idx[found]]
    out[~has] = 0.0
    log.info("%s: %d of %d genes have an ESM2 embedding (%d exact id, %d by symbol/unversioned "
             "id, %d not in the file, %d in it without a protein, %d ambiguous)", path,
             int(has.sum()), len(genes), match.n_exact, match.n_normalized, match.n_missing,
             int((found & ~has).sum()), match.n_ambiguous)
    return out, has
