"""A tiny ESM2 saved in the official checkpoint format, and real protein sequences."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import pytest
import torch

SUBSET = "human_proteins_subset/gene_protein_subset.tsv.gz"


def save_official_checkpoint(model, path: Path, layers: int, dim: int, heads: int) -> Path:
    """Write ``model`` as fair-esm's released ESM2 .pt files are laid out (see TOOLCHAIN §7)."""
    sd = model.state_dict()
    reg = {k: v for k, v in sd.items() if k.startswith("contact_head.")}
    body = {("encoder." + k if k.startswith("lm_head.") else "encoder.sentence_encoder." + k): v
            for k, v in sd.items() if k not in reg}
    cfg = argparse.Namespace(encoder_layers=layers, encoder_embed_dim=dim,
                             encoder_attention_heads=heads, token_dropout=True)
    torch.save({"cfg": {"model": cfg}, "model": body}, path)
    torch.save({"model": reg}, Path(str(path.with_suffix("")) + "-contact-regression.pt"))
    return path


@pytest.fixture(scope="session")
def tiny_esm2(tmp_path_factory) -> tuple[Path, torch.nn.Module]:
    """(checkpoint path, the in-memory model it was saved from) — 2 layers, 64-d, random."""
    import esm
    from esm.model.esm2 import ESM2

    torch.manual_seed(7)
    alphabet = esm.Alphabet.from_architecture("ESM-1b")
    model = ESM2(num_layers=2, embed_dim=64, attention_heads=4, alphabet=alphabet,
                 token_dropout=True).eval()
    path = tmp_path_factory.mktemp("esm") / "esm2_t2_64_tiny.pt"  # stem must start with esm2
    return save_official_checkpoint(model, path, 2, 64, 4), model


@pytest.fixture(scope="session")
def proteins(shared_data: Path) -> pd.DataFrame:
    """Real UniProt sequences, one per gene (symbol, Entrez, Ensembl gene, sequence, ...)."""
    return pd.read_csv(shared_data / SUBSET, sep="\t", dtype={"entrez_gene_id": str})
