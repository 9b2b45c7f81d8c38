"""Checkpoints: one-call load, checksums, atomicity."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import bulkfm.model.checkpoint as ck
from bulkfm.model import BulkFormer, CheckpointError, ModelConfig, load, save_checkpoint


def _model(n: int = 30) -> tuple[BulkFormer, ModelConfig]:
    cfg = ModelConfig(n_genes=n, ae_hidden=[16], ae_latent=8, d_model=16, n_layers=1, n_heads=2,
                      nb_features=8, esm2_dim=4)
    ei = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 4]])
    torch.manual_seed(0)
    m = BulkFormer(cfg, esm2=torch.randn(n, 4), has_protein=torch.ones(n, dtype=torch.bool),
                   edge_index=ei, edge_weight=torch.full((4,), 0.5),
                   gene_mean=torch.rand(n), gene_std=torch.rand(n) + 0.5)
    return m.eval(), cfg


def test_roundtrip_gives_identical_predictions(tmp_path: Path) -> None:
    m, cfg = _model()
    genes = [f"G{i}" for i in range(cfg.n_genes)]
    save_checkpoint(tmp_path / "ck", m, cfg, genes, kind="bulkformer")
    loaded = load(tmp_path / "ck")
    x = torch.rand(3, cfg.n_genes) * 5
    assert torch.equal(loaded(x), m(x))
    assert loaded.genes == genes and loaded.kind == "bulkformer"
    manifest = json.loads((tmp_path / "ck" / "manifest.json").read_text())
    assert set(manifest["files"]) == {"weights.safetensors", "config.json", "genes.txt"}


def test_corrupt_or_incomplete_checkpoint_is_refused(tmp_path: Path) -> None:
    m, cfg = _model()
    save_checkpoint(tmp_path / "ck", m, cfg, [f"G{i}" for i in range(cfg.n_genes)],
                    kind="bulkformer")
    w = tmp_path / "ck" / "weights.safetensors"
    data = bytearray(w.read_bytes())
    data[-1] ^= 0xFF
    w.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum"):
        load(tmp_path / "ck")
    (tmp_path / "ck" / "manifest.json").unlink()
    with pytest.raises(CheckpointError, match="no complete checkpoint"):
        load(tmp_path / "ck")


def test_killed_write_leaves_nothing_that_looks_like_a_checkpoint(tmp_path: Path,
                                                                  monkeypatch) -> None:
    m, cfg = _model()

    def crash(*a, **k):
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(ck.torch, "save", crash)  # dies after the weights were written
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path / "ck", m, cfg, ["g"] * cfg.n_genes, kind="bulkformer",
                        train_state={"step": 1})
    assert list(tmp_path.iterdir()) == []
