"""Everything a run decides once, before any step: split, genes, graph, gene embeddings.

Rank 0 writes the decisions into the output directory; every rank (and every resumed run)
reads them back from there, so all processes train on the same genes and graph.

    DIR/config.json        resolved training config (+ matrix path, resolved switches)
    DIR/splits.tsv         sample_id, group, split
    DIR/genes.txt          model genes, in column order
    DIR/gene_stats.parquet gene, mean, std over the train split (gene-mean baseline)
    DIR/graph/edges.parquet  the PCC graph built here (when no --graph is given)
    DIR/gene_map.tsv       (--init only) model gene -> matrix gene ("" = absent, fed as masked)

With ``init`` (``--init PRETRAINED_DIR``) the genes, gene statistics and graph are the
pretrained run's (bulkfm.train.init), not recomputed from the new matrix.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from bulkfm.common.atomic import atomic_path, write_text_atomic
from bulkfm.matrix.store import ExpressionMatrix, open_matrix
from bulkfm.model.config import ModelSpec
from bulkfm.train.config import TrainConfig
from bulkfm.train.data import DataError, SubsetMatrix, gene_moments, select_genes, split_rows
from bulkfm.train.split import make_split, read_groups, read_split, write_split

log = logging.getLogger(__name__)

# Keys whose change makes a resumed run a different experiment.
_FINGERPRINT = ("model", "max_genes", "esm2", "graph", "graph_top_k", "graph_min_pcc",
                "val_fraction", "test_fraction", "mask_fraction", "context_extra_mask", "seed",
                "weight_decay", "warmup_steps", "grad_clip", "joint_context", "init",
                "gene_table", "ae_mask_choices", "ae_regularisation_choices")


@dataclass
class Prepared:
    matrix: ExpressionMatrix
    data: SubsetMatrix  # model genes only
    genes: list[str]
    split: pd.DataFrame
    train_rows: np.ndarray
    val_rows: np.ndarray
    esm2: torch.Tensor | None
    has_protein: torch.Tensor | None
    edge_index: torch.Tensor | None
    edge_weight: torch.Tensor | None
    use_esm2: bool
    init: Any = None  # bulkfm.train.init.Pretrained when continuing from a pretrained model


def _fingerprint(tcfg: TrainConfig, matrix_path: str,
                 splits: str | None = None) -> dict[str, Any]:
    import hashlib

    d = tcfg.to_dict()
    fp = {k: d[k] for k in _FINGERPRINT}
    fp["ae"] = {k: d["ae"][k] for k in ("lr", "batch_size")}
    fp["transformer"] = {k: d["transformer"][k] for k in ("lr", "batch_size")}
    fp["matrix"] = str(Path(matrix_path).resolve())
    # A changed split file (e.g. the workflow re-split after new samples) is a new experiment.
    fp["splits"] = hashlib.sha256(Path(splits).read_bytes()).hexdigest() if splits else None
    return fp


def check_resume(out: Path, tcfg: TrainConfig, matrix_path: str,
                 splits: str | None = None) -> None:
    cfg_path = out / "config.json"
    if not cfg_path.exists():
        return
    old = json.loads(cfg_path.read_text()).get("fingerprint", {})
    if isinstance(old.get("model"), dict):
        # Written before the model was typed: only the keys that differed from the defaults.
        old["model"] = json.loads(json.dumps({**ModelSpec().to_dict(), **old["model"]}))
    new = json.loads(json.dumps(_fingerprint(tcfg, matrix_path, splits)))
    diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if diff:
        raise ValueError(f"{out} was started with a different configuration ({', '.join(diff)} "
                         "changed); resume with the same settings, choose a new --out, or pass "
                         "--no-resume to start over")


def prepare(out: Path, matrix_path: str, tcfg: TrainConfig, *, labels: str | None,
            splits: str | None, progress: bool = True) -> None:
    """Rank 0: write split, genes, stats, graph, config into ``out`` (skipping what exists)."""
    out.mkdir(parents=True, exist_ok=True)
    check_resume(out, tcfg, matrix_path, splits)
    if not (out / "config.json").exists() and (out / "splits.tsv").exists():
        # config.json is written last: without it an earlier attempt stopped while preparing, and
        # its splits.tsv may come from other fractions or another split file. Never reuse it.
        log.info("%s: an earlier attempt stopped before its config.json; preparing afresh", out)
        clean(out)
    matrix = open_matrix(matrix_path)
    samples = list(matrix.samples)
    if len(set(samples)) != len(samples):
        raise DataError(f"{matrix_path}: duplicate sample ids")
    train_rows = _write_split(out / "splits.tsv", samples, tcfg, labels, splits)
    if tcfg.init:
        _prepare_init(out, matrix, matrix_path, tcfg, samples, splits)
        return
    data = _model_genes(out, matrix, matrix_path, train_rows, tcfg, progress)

    use_gcn = tcfg.model.use_gcn
    graph_path = out / "graph" / "edges.parquet"
    if use_gcn and not tcfg.graph and not graph_path.exists():
        _build_graph(data, train_rows, tcfg, graph_path, progress)

    use_esm2 = bool(tcfg.model.use_esm2 and tcfg.esm2)
    if tcfg.model.use_esm2 and not tcfg.esm2:
        log.warning("no ESM2 file given (esm2: null): gene identity is a learned nn.Embedding")
    _write_record(out, tcfg, matrix_path, splits, n_samples=len(samples), n_genes=len(data.genes),
                  resolved={"use_esm2": use_esm2, "use_gcn": use_gcn,
                            "graph": tcfg.graph or (str(graph_path) if use_gcn else None)})


def _write_split(split_path: Path, samples: list[str], tcfg: TrainConfig, labels: str | None,
                 splits: str | None) -> np.ndarray:
    """DIR/splits.tsv (a given split file, else made by group); returns the train rows."""
    if not split_path.exists():
        if splits:
            table = read_split(splits, samples)
            if "group" not in table.columns:
                table["group"] = table["sample_id"]
        else:
            groups = read_groups(labels, samples) if labels else None
            if groups is None:
                log.warning("no groups given (labels file with a 'group' column): splitting by "
                            "sample; held-out metrics are optimistic if samples share a study")
            table = make_split(samples, groups, val_fraction=tcfg.val_fraction,
                               test_fraction=tcfg.test_fraction, seed=tcfg.seed)
        write_split(table, split_path)
    split = read_split(split_path, samples)
    train_rows = split_rows(split, samples, "train")
    if len(train_rows) < 2:
        raise DataError(f"{split_path}: {len(train_rows)} train sample(s); need at least 2")
    return train_rows


def _model_genes(out: Path, matrix: ExpressionMatrix, matrix_path: str, train_rows: np.ndarray,
                 tcfg: TrainConfig, progress: bool) -> SubsetMatrix:
    """DIR/genes.txt and gene_stats.parquet (top max_genes by train variance); the matrix
    restricted to those genes."""
    genes_path, stats_path = out / "genes.txt", out / "gene_stats.parquet"
    if not genes_path.exists() or not stats_path.exists():
        moments = gene_moments(matrix, train_rows, progress=progress)
        keep = select_genes(moments, tcfg.max_genes)
        genes = [matrix.genes[i] for i in keep]
        with atomic_path(stats_path, suffix=".parquet") as tmp:
            pd.DataFrame({"gene": genes, "mean": moments.mean[keep].astype(np.float32),
                          "std": moments.std[keep].astype(np.float32)}).to_parquet(tmp, index=False)
        write_text_atomic(genes_path, "\n".join(genes) + "\n")
        log.info("model genes: %d of %d (%s)", len(genes), len(matrix.genes),
                 f"top {tcfg.max_genes} by train variance" if tcfg.max_genes else "all")
    genes = [g for g in genes_path.read_text().splitlines() if g]
    position = {g: i for i, g in enumerate(matrix.genes)}
    missing = [g for g in genes if g not in position]
    if missing:
        raise DataError(f"{matrix_path}: {len(missing)} genes of {genes_path} are missing (e.g. "
                        f"{missing[0]}); {out} was prepared from another matrix")
    return SubsetMatrix(matrix, np.array([position[g] for g in genes]), genes)


def _write_record(out: Path, tcfg: TrainConfig, matrix_path: str, splits: str | None, *,
                  n_samples: int, n_genes: int, resolved: dict[str, Any],
                  init: str | None = None) -> None:
    """DIR/config.json, written last: the resolved config, its fingerprint and the switches
    the data decided (no ESM2 file, no graph)."""
    if (out / "config.json").exists():
        return
    record = {"train": tcfg.to_dict(), "fingerprint": _fingerprint(tcfg, matrix_path, splits),
              "matrix": str(matrix_path), "n_samples": n_samples, "n_genes": n_genes,
              **({"init": init} if init else {}), "resolved": resolved}
    write_text_atomic(out / "config.json", json.dumps(record, indent=2) + "\n")


def _prepare_init(out: Path, matrix: ExpressionMatrix, matrix_path: str, tcfg: TrainConfig,
                  samples: list[str], splits: str | None) -> None:
    """--init: genes, statistics and graph from the pretrained run; the matrix mapped to them."""
    import shutil

    from bulkfm.train.init import match_to_pretrained, open_pretrained, write_gene_map

    pre = open_pretrained(tcfg.init)
    if not (out / "gene_map.tsv").exists():
        index = match_to_pretrained(pre, matrix.genes,
                                    matrix_names=getattr(matrix, "gene_names", None),
                                    gene_table=tcfg.gene_table, where=str(matrix_path))
        shutil.copyfile(pre.path / "gene_stats.parquet", out / "gene_stats.parquet")
        write_text_atomic(out / "genes.txt", "\n".join(pre.genes) + "\n")
        write_gene_map(out / "gene_map.tsv", pre.genes, matrix.genes, index)
    model_cfg = pre.model_config
    graph = pre.graph
    if graph is not None and not (out / "graph" / "edges.parquet").exists():
        (out / "graph").mkdir(exist_ok=True)
        shutil.copyfile(graph, out / "graph" / "edges.parquet")
    if tcfg.model_set:
        log.info("init: the architecture is the pretrained model's (%s); model keys of this "
                 "config are not used", pre.model_dir)
    _write_record(out, tcfg, matrix_path, splits, n_samples=len(samples),
                  n_genes=len(pre.genes), init=str(pre.path),
                  resolved={"use_esm2": model_cfg.use_esm2, "use_gcn": model_cfg.use_gcn,
                            "graph": str(out / "graph" / "edges.parquet")
                            if graph is not None else None})


def _build_graph(data: SubsetMatrix, train_rows: np.ndarray, tcfg: TrainConfig, path: Path,
                 progress: bool) -> None:
    from bulkfm.graph.io import write_edges
    from bulkfm.graph.pcc import pcc_topk

    genes = data.genes
    if len(train_rows) < 3:
        log.warning("%d train samples: too few for a correlation graph; the GCN gets no edges "
                    "(self-loops only)", len(train_rows))
        write_edges(path, [], [], np.zeros(0, np.float32), metadata={"note": "too few samples"})
        return
    res = pcc_topk(data, train_rows, top_k=tcfg.graph_top_k, min_pcc=tcfg.graph_min_pcc,
                   progress=progress)
    e = res.edges
    write_edges(path, [genes[i] for i in e.source], [genes[i] for i in e.target], e.pcc,
                metadata={"top_k": tcfg.graph_top_k, "min_pcc": tcfg.graph_min_pcc,
                          "n_train_samples": len(train_rows)})
    log.info("graph: %d edges over %d genes from %d train samples", len(e.pcc), len(genes),
             len(train_rows))


def load_prepared(out: Path, matrix_path: str, tcfg: TrainConfig) -> Prepared:
    """Every rank: read back what ``prepare`` wrote."""
    record = json.loads((out / "config.json").read_text())
    matrix = open_matrix(matrix_path)
    samples = list(matrix.samples)
    split = read_split(out / "splits.tsv", samples)
    genes = [g for g in (out / "genes.txt").read_text().splitlines() if g]
    if record.get("init"):
        from bulkfm.train.init import open_pretrained, read_gene_map

        pre = open_pretrained(record["init"])
        data = SubsetMatrix(matrix, read_gene_map(out / "gene_map.tsv", matrix.genes), genes,
                            fill=pre.model_config.mask_value)
        # Graph and ESM2 table come with the pretrained weights.
        return Prepared(matrix=matrix, data=data, genes=genes, split=split,
                        train_rows=split_rows(split, samples, "train"),
                        val_rows=split_rows(split, samples, "val"), esm2=None,
                        has_protein=None, edge_index=None, edge_weight=None,
                        use_esm2=record["resolved"]["use_esm2"], init=pre)
    position = {g: i for i, g in enumerate(matrix.genes)}
    data = SubsetMatrix(matrix, np.array([position[g] for g in genes]), genes)
    names = getattr(matrix, "gene_names", None)
    sub_names = [names[position[g]] for g in genes] if names is not None else None

    edge_index = edge_weight = None
    if record["resolved"]["use_gcn"]:
        from bulkfm.graph.io import load_graph

        gpath = Path(record["resolved"]["graph"])
        edge_index, edge_weight = load_graph(gpath, genes, strict=False, gene_names=sub_names)
        if edge_index.shape[1] == 0 and (out / "graph" / "edges.parquet") != gpath:
            raise DataError(f"{gpath}: no edge connects two model genes; the graph was built for "
                            "other gene ids. Rebuild it from this matrix, or omit --graph to "
                            "build it here")
    esm2 = has_protein = None
    use_esm2 = record["resolved"]["use_esm2"]
    if use_esm2:
        from bulkfm.embed.io import load_gene_embeddings

        esm2, has_protein = load_gene_embeddings(tcfg.esm2, genes, gene_names=sub_names)
        if not bool(has_protein.any()):
            raise DataError(f"{tcfg.esm2}: none of the {len(genes)} model genes has an "
                            "embedding; it was made for other gene ids. Rebuild it with "
                            "`bulkfm embed` for these genes, or set model.use_esm2: false")
        log.info("ESM2: %d of %d genes embedded; the rest get a learned vector",
                 int(has_protein.sum()), len(genes))
    return Prepared(matrix=matrix, data=data, genes=genes, split=split,
                    train_rows=split_rows(split, samples, "train"),
                    val_rows=split_rows(split, samples, "val"), esm2=esm2,
                    has_protein=has_protein, edge_index=edge_index, edge_weight=edge_weight,
                    use_esm2=use_esm2)


def clean(out: Path) -> None:
    """--no-resume: remove a previous run's outputs (only the files this stage writes)."""
    import shutil

    for name in ("checkpoints", "ae", "model", "graph", "tensorboard", "readout"):
        shutil.rmtree(out / name, ignore_errors=True)
    for name in ("config.json", "splits.tsv", "genes.txt", "gene_stats.parquet", "metrics.csv",
                 "training_curves.png", "summary.json", "gene_map.tsv"):
        p = out / name
        if p.exists():
            os.unlink(p)
