"""Checkpoints: a directory that either is complete or does not exist.

    <ckpt>/
      weights.safetensors   model parameters and buffers (ESM2 table and graph included)
      config.json           {"kind": "bulkformer" | "autoencoder", "model": ModelConfig, ...}
      genes.txt             one gene id per line, in column order
      train_state.pt        (resumable checkpoints only) optimizer, step, RNG states
      manifest.json         written last: sha256 + size of every file above

It is written in a temporary directory beside the target and renamed into place, so a killed
job leaves at most a ``.<name>.*.tmp`` directory, which no reader opens. ``load`` checks the
manifest's checksums before reading weights.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from bulkfm.common.atomic import atomic_path
from bulkfm.model.autoencoder import Autoencoder
from bulkfm.model.bulkformer import BulkFormer
from bulkfm.model.config import ModelConfig

log = logging.getLogger(__name__)

FORMAT = "bulkfm-checkpoint"
VERSION = 1
MANIFEST = "manifest.json"


class CheckpointError(ValueError):
    """A checkpoint is missing, incomplete, corrupt or for other genes."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def unwrap(module: nn.Module) -> nn.Module:
    return getattr(module, "module", module)  # DDP wraps the model in .module


def save_checkpoint(path: str | os.PathLike[str], module: nn.Module, cfg: ModelConfig,
                    genes: list[str], *, kind: str, train_state: dict[str, Any] | None = None,
                    meta: dict[str, Any] | None = None) -> Path:
    path = Path(path)
    module = unwrap(module)
    state = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}
    with atomic_path(path) as tmp:
        tmp.mkdir()
        save_file(state, str(tmp / "weights.safetensors"))
        config = {"format": FORMAT, "version": VERSION, "kind": kind, "model": cfg.to_dict(),
                  **(meta or {})}
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        (tmp / "genes.txt").write_text("\n".join(genes) + "\n")
        if train_state is not None:
            torch.save(train_state, tmp / "train_state.pt")
        files = sorted(p.name for p in tmp.iterdir())
        manifest = {"format": FORMAT, "version": VERSION,
                    "files": {n: {"sha256": _sha256(tmp / n), "bytes": (tmp / n).stat().st_size}
                              for n in files}}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return path


def is_complete(path: str | os.PathLike[str]) -> bool:
    return (Path(path) / MANIFEST).is_file()


def verify(path: str | os.PathLike[str]) -> dict[str, Any]:
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"{path}: no such checkpoint directory")
    if not is_complete(path):
        raise CheckpointError(f"{path}: incomplete checkpoint (no {MANIFEST}); it was not "
                              "written to the end. Delete it and resume from an earlier one")
    manifest = json.loads((path / MANIFEST).read_text())
    for name, info in manifest["files"].items():
        f = path / name
        if not f.is_file() or f.stat().st_size != info["bytes"] or _sha256(f) != info["sha256"]:
            raise CheckpointError(f"{path}: {name} does not match its checksum in {MANIFEST} "
                                  "(corrupt or modified); delete this checkpoint")
    return manifest


def latest_checkpoint(root: str | os.PathLike[str]) -> Path | None:
    """Newest complete, checksum-valid ``step-*`` checkpoint under root; corrupt ones are
    skipped loudly (a resumed run falls back to the one before)."""
    root = Path(root)
    if not root.is_dir():
        return None
    for path in sorted(root.glob("step-*"), reverse=True):
        if not is_complete(path):
            continue
        try:
            verify(path)
        except CheckpointError as exc:
            log.warning("skipping %s", exc)
            continue
        return path
    return None


def prune_checkpoints(root: str | os.PathLike[str], keep: int) -> None:
    """Keep the newest ``keep`` complete step checkpoints; drop older ones and the temporary
    directories of a job killed while writing."""
    import shutil

    root = Path(root)
    done = sorted(p for p in root.glob("step-*") if is_complete(p))
    for old in done[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    for tmp in root.glob(".step-*.tmp"):
        shutil.rmtree(tmp, ignore_errors=True)


def resolve(path: str | os.PathLike[str]) -> Path:
    """A checkpoint directory, or a ``bulkfm train`` output directory (-> its model, else AE)."""
    path = Path(path)
    if is_complete(path):
        return path
    for sub in ("model", "ae"):
        if is_complete(path / sub):
            return path / sub
    raise CheckpointError(f"{path}: no complete checkpoint here (expected {MANIFEST}, or a train "
                          "output directory with model/ or ae/); was training finished?")


def read_genes(path: str | os.PathLike[str]) -> list[str]:
    return [g for g in (Path(path) / "genes.txt").read_text().splitlines() if g]


def build_module(kind: str, cfg: ModelConfig, state: dict[str, torch.Tensor]) -> nn.Module:
    """An empty module shaped like ``state`` (the ESM2 table and graph come from it)."""
    if kind == "autoencoder":
        return Autoencoder(cfg.n_genes, cfg.ae_hidden, cfg.ae_latent, cfg.dropout,
                           mask_value=cfg.mask_value)
    if kind == "bulkformer":
        return BulkFormer(
            cfg, esm2=state.get("tokenizer.identity.esm2"),
            has_protein=state.get("tokenizer.identity.has_protein"),
            edge_index=state.get("graph.edge_index"), edge_weight=state.get("graph.edge_weight"))
    raise CheckpointError(f"unknown checkpoint kind {kind!r}")


def load(path: str | os.PathLike[str], map_location: str | torch.device = "cpu",
         check: bool = True) -> nn.Module:
    """Load a model with one call: ``bulkfm.model.load("results/train")``.

    Returns the module in eval mode with ``.genes`` (column order of its input), ``.kind`` and
    ``.config`` set. Inputs are log1p(TPM) [B, len(genes)]; masked genes = ``config.mask_value``.
    """
    ckpt = resolve(path)
    if check:
        verify(ckpt)
    meta = json.loads((ckpt / "config.json").read_text())
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{ckpt}: config.json is not a {FORMAT} config")
    cfg = ModelConfig.from_dict(meta["model"])
    state = load_file(str(ckpt / "weights.safetensors"))
    module = build_module(meta["kind"], cfg, state)
    module.load_state_dict(state, strict=True)
    module.to(map_location).eval()
    module.genes = read_genes(ckpt)  # type: ignore[assignment]
    module.kind = meta["kind"]  # type: ignore[assignment]
    module.config = cfg  # type: ignore[assignment]
    module.checkpoint_meta = meta  # type: ignore[assignment]
    if len(module.genes) != cfg.n_genes:  # type: ignore[arg-type]
        raise CheckpointError(f"{ckpt}: genes.txt has {len(module.genes)} genes, config says "
                              f"{cfg.n_genes}")
    return module


def load_train_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    # Our own file (optimizer tensors, python ints, RNG byte tensors, numpy-free): safe to load
    # with weights_only=True.
    return torch.load(Path(path) / "train_state.pt", map_location="cpu", weights_only=True)
