"""``bulkfm train --init PRETRAINED_DIR``: continue from a pretrained model on a new matrix.

What is kept from the pretrained run: its genes (and their order), its per-gene statistics
(the normalisation inside the model), its PCC graph, its ESM2 table and every weight, AE
included. The new matrix is matched to the pretrained genes by id:

* same id type on both sides (Ensembl, ``SYMBOL|ENTREZ`` as TCGA writes it, or symbols):
  exact id, else the shared normalised key (``bulkfm.embed.gene_ids``);
* different id types (e.g. a model pretrained on TCGA ``SYMBOL|ENTREZ`` and an Ensembl
  matrix): mapped through a gene table (``--gene-table``: a TSV with ``entrez_gene_id``,
  ``symbol`` and ``ensembl_gene_id`` columns, as ``gene_table_gencode_v48/
  orgHsEgDb_3.16_entrez_symbol_ensembl.tsv.gz``). Without a table this is an error: matching
  symbols against Ensembl ids would silently find nothing.

Missing genes (pretrained genes the matrix lacks) are fed to the model as masked values and
never enter a loss or a score, exactly like a masked gene the model must infer; the number is
logged and written to ``DIR/gene_map.tsv``. Matrix genes the pretrained model does not know are
ignored. Fewer than ``MIN_SHARED`` of the pretrained genes present is an error: the transfer
would then mostly run on guesses. A pretrained directory without its finished ``model/`` and
``ae/`` checkpoints, ``genes.txt``, ``gene_stats.parquet`` or ``config.json`` is an error
naming the missing file.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bulkfm.embed.gene_ids import match_genes
from bulkfm.model.checkpoint import CheckpointError, is_complete, verify
from bulkfm.model.config import ModelConfig

log = logging.getLogger(__name__)

MIN_SHARED = 0.5  # fraction of the pretrained genes the new matrix must hold
_ENSEMBL = re.compile(r"^ENS[A-Z]*G\d+(\.\d+)?(_PAR_Y)?$", re.IGNORECASE)
_SYMBOL_ENTREZ = re.compile(r"^[^|]+\|\d+$")


@dataclass(frozen=True)
class Pretrained:
    path: Path
    genes: list[str]
    config: dict[str, Any]  # the pretrained run's config.json

    @property
    def model_dir(self) -> Path:
        return self.path / "model"

    @property
    def model_config(self) -> ModelConfig:
        """The pretrained model's architecture (its checkpoint's config.json)."""
        return ModelConfig.from_dict(json.loads((self.model_dir / "config.json").read_text())["model"])

    @property
    def ae_dir(self) -> Path:
        return self.path / "ae"

    @property
    def graph(self) -> Path | None:
        g = self.config.get("resolved", {}).get("graph")
        local = self.path / "graph" / "edges.parquet"
        if local.exists():
            return local
        return Path(g) if g and Path(g).exists() else None


def open_pretrained(path: str | os.PathLike[str]) -> Pretrained:
    """A finished ``bulkfm train`` output directory, checked file by file."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"--init {path}: no such directory; give a bulkfm train output "
                              "directory")
    needed = {"model/": is_complete(path / "model"), "ae/": is_complete(path / "ae"),
              "genes.txt": (path / "genes.txt").is_file(),
              "gene_stats.parquet": (path / "gene_stats.parquet").is_file(),
              "config.json": (path / "config.json").is_file()}
    missing = [name for name, ok in needed.items() if not ok]
    if missing:
        raise CheckpointError(
            f"--init {path}: the pretrained model is incomplete: {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} missing or unfinished. Finish its training "
            "(rerun the same bulkfm train command there) or copy the whole directory")
    verify(path / "model")
    verify(path / "ae")
    genes = [g for g in (path / "genes.txt").read_text().splitlines() if g]
    ckpt_genes = [g for g in (path / "model" / "genes.txt").read_text().splitlines() if g]
    if ckpt_genes != genes:
        raise CheckpointError(f"--init {path}: genes.txt differs from model/genes.txt; the "
                              "directory mixes two runs")
    return Pretrained(path=path, genes=genes,
                      config=json.loads((path / "config.json").read_text()))


def id_type(genes: Sequence[str]) -> str:
    """"ensembl", "symbol|entrez" or "symbol": what most of these ids are."""
    sample = list(genes)[:2000]
    if not sample:
        return "symbol"
    ens = sum(bool(_ENSEMBL.match(g)) for g in sample)
    se = sum(bool(_SYMBOL_ENTREZ.match(g)) for g in sample)
    if ens >= 0.5 * len(sample):
        return "ensembl"
    if se >= 0.5 * len(sample):
        return "symbol|entrez"
    return "symbol"


def _table_aliases(genes: Sequence[str], kind: str, target: str,
                   table_path: str | os.PathLike[str]) -> list[list[str]]:
    """For each gene (of id type ``kind``), its names in id type ``target`` from the table."""
    t = pd.read_csv(table_path, sep="\t", dtype=str, keep_default_na=False)
    need = {"entrez_gene_id", "symbol", "ensembl_gene_id"}
    if not need <= set(t.columns):
        raise ValueError(f"{table_path}: a gene table needs columns {sorted(need)}; got "
                         f"{list(t.columns)}")
    by_ens: dict[str, list[str]] = {}
    by_entrez: dict[str, list[str]] = {}
    by_symbol: dict[str, list[str]] = {}
    for ez, sym, ens in t[["entrez_gene_id", "symbol", "ensembl_gene_id"]].itertuples(False):
        if ens:
            by_ens.setdefault(ens.upper(), []).append(f"{sym}|{ez}" if target == "symbol|entrez"
                                                      else sym)
        if ez:
            by_entrez.setdefault(ez, []).append(ens if target == "ensembl" else sym)
        if sym:
            by_symbol.setdefault(sym.upper(), []).append(ens if target == "ensembl" else sym)
    out: list[list[str]] = []
    for g in genes:
        if kind == "ensembl":
            names = by_ens.get(g.split(".")[0].upper(), [])
        elif kind == "symbol|entrez":
            names = by_entrez.get(g.split("|")[1], []) or by_symbol.get(g.split("|")[0].upper(), [])
        else:
            names = by_symbol.get(g.upper(), [])
        out.append([n for n in names if n])
    return out


def match_to_pretrained(pre: Pretrained, matrix_genes: Sequence[str], *,
                        matrix_names: Sequence[str] | None = None,
                        gene_table: str | os.PathLike[str] | None = None,
                        where: str = "matrix") -> np.ndarray:
    """Matrix column of each pretrained gene (-1 = absent, fed as masked)."""
    pre_type, mat_type = id_type(pre.genes), id_type(matrix_genes)
    aliases = None if matrix_names is None else [[n] for n in matrix_names]
    query_aliases = None
    if pre_type != mat_type:
        if gene_table is None:
            raise ValueError(
                f"{where}: its genes are {mat_type} ids, the pretrained model {pre.path} uses "
                f"{pre_type} ids; pass --gene-table (entrez_gene_id, symbol, ensembl_gene_id "
                "TSV, e.g. gene_table_gencode_v48/orgHsEgDb_3.16_entrez_symbol_ensembl.tsv.gz) "
                "to map them, or use a matrix with the pretrained model's gene ids")
        query_aliases = _table_aliases(pre.genes, pre_type, mat_type, gene_table)
    match = match_genes(pre.genes, list(matrix_genes), reference_aliases=aliases,
                        query_aliases=query_aliases)
    index = np.asarray(match.index, dtype=np.int64)
    found = int((index >= 0).sum())
    share = found / max(1, len(pre.genes))
    if share < MIN_SHARED:
        raise ValueError(
            f"{where} holds {found} of the {len(pre.genes)} genes of the pretrained model "
            f"{pre.path} ({share:.0%} < {MIN_SHARED:.0%}): too few to transfer. "
            + ("Check that both use the same gene ids, or pass --gene-table to map them"
               if query_aliases is None else "Check the gene table and the matrix's gene ids"))
    how = (f"{match.n_exact} by id, {match.n_normalized} by normalised id"
           + (" or the gene table" if query_aliases is not None else ""))
    log.info("init: %d of %d pretrained genes found in %s (%s); %d missing are fed as masked "
             "and never scored; %d matrix genes unknown to the pretrained model are ignored",
             found, len(pre.genes), where, how, len(pre.genes) - found,
             len(matrix_genes) - found)
    return index


def write_gene_map(path: Path, genes: list[str], matrix_genes: Sequence[str],
                   index: np.ndarray) -> None:
    from bulkfm.common.atomic import atomic_path

    with atomic_path(path, suffix=".tsv") as tmp:
        pd.DataFrame({"gene": genes, "matrix_gene": [matrix_genes[i] if i >= 0 else ""
                                                     for i in index]}).to_csv(
            tmp, sep="\t", index=False)


def read_gene_map(path: Path, matrix_genes: Sequence[str]) -> np.ndarray:
    t = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    pos = {g: i for i, g in enumerate(matrix_genes)}
    missing = [g for g in t["matrix_gene"] if g and g not in pos]
    if missing:
        raise ValueError(f"{path}: matrix gene {missing[0]} is not in the matrix; the run was "
                         "prepared from another matrix")
    return np.array([pos[g] if g else -1 for g in t["matrix_gene"]], dtype=np.int64)
