"""esm2.pt format: validation, weights_only loading, alignment to the model's genes."""

from __future__ import annotations

import argparse
import logging

import pytest
import torch

from bulkfm.embed.io import load_gene_embeddings, save_gene_embeddings


def record(**over):
    rec = {"genes": ["ENSG00000146648", "ENSG00000136997", "ENSG00000142208"],
           "aliases": [["EGFR"], ["MYC"], ["AKT1"]],
           "embeddings": torch.arange(12, dtype=torch.float32).reshape(3, 4) + 1,
           "has_protein": torch.tensor([True, True, False]), "model": "esm2_test",
           "repr_layer": 2, "n_layers_used": 2, "embed_dim": 4}
    rec.update(over)
    return rec


def test_alignment_by_id_symbol_and_tcga_id(tmp_path, caplog):
    path = save_gene_embeddings(tmp_path / "esm2.pt", record())
    genes = ["MYC|4609", "ENSG00000146648.21", "AKT1|207", "GONE|1"]
    with caplog.at_level(logging.INFO):
        emb, has = load_gene_embeddings(path, genes)
    assert emb.shape == (4, 4) and emb.dtype == torch.float32 and has.dtype == torch.bool
    assert has.tolist() == [True, True, False, False]
    assert emb[0].tolist() == [5, 6, 7, 8] and emb[1].tolist() == [1, 2, 3, 4]
    assert emb[2:].abs().sum() == 0  # no protein / not in the file -> zeros
    assert "2 of 4 genes have an ESM2 embedding" in caplog.text
    assert "1 not in the file, 1 in it without a protein" in caplog.text


def test_invalid_files_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="float32"):
        save_gene_embeddings(tmp_path / "a.pt", record(embeddings=torch.zeros(3, 4,
                                                                              dtype=torch.float64)))
    with pytest.raises(ValueError, match="non-finite"):
        save_gene_embeddings(tmp_path / "a.pt", record(embeddings=torch.full((3, 4), float("nan"))))
    with pytest.raises(ValueError, match="duplicate"):
        save_gene_embeddings(tmp_path / "a.pt", record(genes=["A", "A", "B"]))
    assert not (tmp_path / "a.pt").exists()
    torch.save({"something": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a bulkfm ESM2 embedding file"):
        load_gene_embeddings(tmp_path / "other.pt", ["A"])
    with pytest.raises(FileNotFoundError, match="bulkfm embed-genes"):
        load_gene_embeddings(tmp_path / "missing.pt", ["A"])
    # Pickled objects are refused: the file is loaded with weights_only=True.
    torch.save({"format": "bulkfm-esm2", "x": argparse.Namespace(a=1)}, tmp_path / "pickled.pt")
    with pytest.raises(Exception, match="Weights only load failed"):
        load_gene_embeddings(tmp_path / "pickled.pt", ["A"])
