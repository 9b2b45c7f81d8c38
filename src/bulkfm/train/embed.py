"""Sample and gene embeddings of a trained model for any matrix, streamed in row batches.

    OUT/sample_embeddings.parquet   sample_id, embedding_0..embedding_{D-1} (the model's sample
                                    embedding, as defined in DIR/readout:
                                    bulkfm.model.sample_embedding), then its blocks:
                                    pca_0..pca_{N-1} (PCA of the raw log1p, fitted on the
                                    training samples), emb_0..emb_{d-1} (mean or max of the
                                    final hidden states over genes), ae_0..ae_{k-1} (the AE
                                    latent, when present)
    OUT/gene_embeddings.parquet     gene, emb_0..emb_{d-1}: each gene's final hidden state
                                    averaged over the samples (contextual gene embedding)

Memory: one batch of tokens [B, G, d] plus a running [G, d] sum, whatever the sample count.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from tqdm.auto import tqdm

from bulkfm.common.atomic import atomic_path
from bulkfm.matrix.store import ExpressionMatrix, iter_row_batches, open_matrix
from bulkfm.model.checkpoint import load
from bulkfm.train.data import SubsetMatrix, align_genes
from bulkfm.train.ddp import pick_device

log = logging.getLogger(__name__)


def model_view(model: torch.nn.Module, matrix: ExpressionMatrix,
               allow_missing: float = 0.0) -> SubsetMatrix:
    """The matrix reordered to the model's genes (absent genes read as the mask value)."""
    index = align_genes(model.genes, matrix, allow_missing=allow_missing,  # type: ignore[arg-type]
                        names=getattr(matrix, "gene_names", None))
    return SubsetMatrix(matrix, index, list(model.genes), fill=model.config.mask_value)


def readout_of(checkpoint: str | os.PathLike[str]):
    """The readout saved beside a checkpoint (train dir, or its model/ subdir), or None."""
    from bulkfm.model.readout import load_readout

    path = Path(checkpoint)
    for where in (path, path.parent):
        r = load_readout(where)
        if r is not None:
            return r
    return None


def sample_embedding(parts: dict[str, np.ndarray | None], readout=None) -> np.ndarray:
    """The model's sample embedding from its blocks: the readout's saved definition
    (bulkfm.model.sample_embedding), else (runs from before it) [PCA | pooled hidden], else the
    pooled hidden alone."""
    if readout is not None and readout.embedding is not None:
        return readout.embedding(parts)
    if parts.get("pca") is not None:
        return np.concatenate([parts["pca"], parts["pooled"]], axis=1)
    return parts["pooled"]


@torch.no_grad()
def iter_embeddings(model: torch.nn.Module, data: SubsetMatrix, rows: np.ndarray | None,
                    batch_size: int, device: torch.device, progress: bool = True,
                    readout=None) -> Iterator[tuple[np.ndarray, np.ndarray,
                                                    dict[str, np.ndarray | None],
                                                    torch.Tensor | None]]:
    """Yield (row indices, sample embedding [B, D], blocks, hidden [B, G, d] or None).

    blocks: ``pca`` (readout PCA of x, or None), ``ae`` (AE latent, or None), ``pooled``
    (pooled final hidden states; for an AE checkpoint its latent)."""
    rows = np.arange(data.shape[0]) if rows is None else rows
    for idx, x in tqdm(iter_row_batches(data, batch_size, rows), desc="embed", unit="batch",
                       total=-(-len(rows) // batch_size), disable=not progress):
        xt = torch.from_numpy(x).to(device)
        if getattr(model, "kind", None) == "autoencoder":  # kind is set by load()
            z = model.encode(xt).float().cpu().numpy()
            yield idx, z, {"pca": None, "ae": z, "pooled": z}, None
            continue
        pooled, hidden = model.embed(xt)
        parts = {"pooled": pooled.cpu().numpy(),
                 "ae": model.ae.encode(xt).float().cpu().numpy() if model.ae is not None
                 else None,
                 "pca": readout.pca(x, model.config.mask_value) if readout is not None
                 else None}
        yield idx, sample_embedding(parts, readout), parts, hidden


def embed_matrix(checkpoint: str | os.PathLike[str], matrix_path: str | os.PathLike[str],
                 out: str | os.PathLike[str], *, batch_size: int = 8, device: str = "auto",
                 allow_missing: float = 0.0, progress: bool = True) -> Path:
    dev = pick_device(device)
    model = load(checkpoint, map_location=dev)
    readout = readout_of(checkpoint) if model.kind != "autoencoder" else None
    if readout is None and model.kind != "autoencoder":
        log.warning("%s: no readout (trained before it existed, or blend fitting skipped): the "
                    "sample embedding is the pooled hidden state alone", checkpoint)
    data = model_view(model, open_matrix(matrix_path), allow_missing)
    out = Path(out)
    gene_sum: torch.Tensor | None = None
    n = 0
    with atomic_path(out) as tmp:
        tmp.mkdir()
        writer: pq.ParquetWriter | None = None
        for idx, emb, parts, hidden in iter_embeddings(model, data, None, batch_size, dev,
                                                       progress, readout):
            cols: dict[str, object] = {"sample_id": [data.samples[i] for i in idx]}
            if model.kind != "autoencoder":
                cols.update({f"embedding_{j}": emb[:, j] for j in range(emb.shape[1])})
                for block, prefix in (("pca", "pca"), ("pooled", "emb")):
                    if parts[block] is not None:
                        cols.update({f"{prefix}_{j}": parts[block][:, j]
                                     for j in range(parts[block].shape[1])})
            if parts["ae"] is not None:
                cols.update({f"ae_{j}": parts["ae"][:, j] for j in range(parts["ae"].shape[1])})
            table = pa.table(cols)
            if writer is None:
                writer = pq.ParquetWriter(tmp / "sample_embeddings.parquet", table.schema)
            writer.write_table(table)
            if hidden is not None:
                s = hidden.float().sum(0).cpu()
                gene_sum = s if gene_sum is None else gene_sum + s
            n += len(idx)
        if writer is not None:
            writer.close()
        if gene_sum is not None:
            g = (gene_sum / n).numpy()
            cols = {"gene": list(model.genes), **{f"emb_{j}": g[:, j] for j in range(g.shape[1])}}
            pq.write_table(pa.table(cols), tmp / "gene_embeddings.parquet")
    log.info("wrote embeddings of %d samples to %s", n, out)
    return out
