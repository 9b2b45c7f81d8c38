"""load_graph: id matching, strictness, isolated nodes."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from bulkfm.embed.gene_ids import match_genes, normalize_gene_id
from bulkfm.graph.io import load_graph, write_edges


def test_normalize_gene_id():
    assert normalize_gene_id("TP53|7157") == "TP53"
    assert normalize_gene_id("?|100130426") is None  # TCGA's unknown symbol names many genes
    assert normalize_gene_id("ENSG00000141510.17") == "ENSG00000141510"
    assert normalize_gene_id("ENSG00000141510") == "ENSG00000141510"
    assert normalize_gene_id("ENSG00000182378.14_PAR_Y") == "ENSG00000182378_PAR_Y"
    assert normalize_gene_id("C1orf112") == normalize_gene_id("C1ORF112")


def test_match_genes_skips_ambiguous_keys():
    # TCGA really has SLC35E2|728661 and SLC35E2|9906: "SLC35E2" must not pick one of them.
    m = match_genes(["SLC35E2", "TP53", "SLC35E2|9906"], ["SLC35E2|728661", "SLC35E2|9906",
                                                          "TP53|7157"])
    assert m.index == [-1, 2, 1]
    assert (m.n_exact, m.n_normalized, m.n_ambiguous, m.n_missing) == (1, 1, 1, 1)


@pytest.fixture()
def edges(tmp_path):
    path = tmp_path / "edges.parquet"
    write_edges(path, ["TP53|7157", "TP53|7157", "EGFR|1956", "MYC|4609"],
                ["EGFR|1956", "MYC|4609", "TP53|7157", "GONE|1"],
                np.array([0.9, -0.5, 0.8, 0.45], dtype=np.float32))
    return path


def test_load_graph_indexes_genes_and_counts_isolated(edges, caplog):
    genes = ["MYC|4609", "EXTRA|9", "TP53|7157", "EGFR|1956", "GONE|1"]
    with caplog.at_level(logging.INFO):
        ei, w = load_graph(edges, genes)
    assert ei.dtype == torch.int64 and w.dtype == torch.float32
    assert ei.tolist() == [[2, 2, 3, 0], [3, 0, 2, 4]]
    assert w.tolist() == pytest.approx([0.9, -0.5, 0.8, 0.45])
    assert "1 genes isolated" in caplog.text


def test_load_graph_unknown_genes_strict_and_lenient(edges, caplog):
    genes = ["TP53|7157", "EGFR|1956", "MYC|4609"]
    with pytest.raises(ValueError, match=r"1 of 4 graph genes .*GONE\|1.*strict=False"):
        load_graph(edges, genes)
    with caplog.at_level(logging.WARNING):
        ei, w = load_graph(edges, genes, strict=False)
    assert ei.tolist() == [[0, 0, 1], [1, 2, 0]]
    assert "dropped 1 of 4 edges" in caplog.text


def test_load_graph_matches_symbols_and_store_names(edges):
    # A bulkfm store: Ensembl ids, symbols in gene_names.
    genes = ["ENSG00000141510", "ENSG00000146648", "ENSG00000136997", "ENSG0000000GONE"]
    names = ["TP53", "EGFR", "MYC", "GONE"]
    ei, _ = load_graph(edges, genes, gene_names=names)
    assert ei.tolist() == [[0, 0, 1, 2], [1, 2, 0, 3]]
    with pytest.raises(ValueError, match="not among"):
        load_graph(edges, genes)  # without names nothing can match


def test_load_graph_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="bulkfm graph build"):
        load_graph(tmp_path / "missing.parquet", ["A"])
    import pandas as pd

    pd.DataFrame({"a": ["x"], "b": ["y"]}).to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(ValueError, match="missing columns"):
        load_graph(tmp_path / "bad.parquet", ["x", "y"])


def test_load_graph_drops_self_loops_from_merged_ids(tmp_path, caplog):
    path = tmp_path / "edges.parquet"
    write_edges(path, ["MYC|4609", "MYC|4609"], ["ENSG00000136997.15", "EGFR|1956"],
                np.array([0.7, 0.6], dtype=np.float32))
    with caplog.at_level(logging.WARNING):
        ei, w = load_graph(path, ["ENSG00000136997", "ENSG00000146648"],
                           gene_names=["MYC", "EGFR"])
    assert ei.tolist() == [[0], [1]] and w.tolist() == pytest.approx([0.6])
    assert "dropped 1 self-loops" in caplog.text
