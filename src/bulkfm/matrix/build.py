"""Stack per-sample gene vectors into a matrix store, streaming: memory O(chunk x genes).

Each sample's job already aggregated transcripts to genes (``genes.npy``: counts, TPM, length
in the reference gene order), so this step reads compact vectors, selects the kept genes,
computes the layers and writes them chunk by chunk. It never holds all samples at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from tqdm import tqdm

from bulkfm.matrix.store import MatrixWriter
from bulkfm.quant.aggregate import length_scaled_tpm, scaled_tpm

log = logging.getLogger(__name__)

CountsFrom = Literal["no", "scaledTPM", "lengthScaledTPM"]


def select_genes(genes: pd.DataFrame, gene_types: list[str] | None) -> np.ndarray:
    """Indices of the genes kept, in the reference order (one fixed order for every sample)."""
    if not gene_types:
        return np.arange(len(genes))
    keep = genes["gene_type"].isin(gene_types).to_numpy()
    if not keep.any():
        raise ValueError(f"no gene has gene_type in {gene_types}; does the gene table "
                         "(config matrix.gene_table / quant.reference.gene_table) have gene types?")
    return np.flatnonzero(keep)


class VectorReader:
    """Reads per-sample ``genes.npy`` files (float32 [3, genes]) fast.

    Every vector of a reference has the same ``.npy`` header, so it is parsed once and later
    files are read at the known offset, checked by size: ``np.load`` spends most of its time
    parsing the header, which would halve assembly throughput.
    """

    def __init__(self, n_genes: int) -> None:
        self.n_genes = n_genes
        self.offset: int | None = None

    def __call__(self, path: Path) -> np.ndarray:
        expected = 3 * self.n_genes * 4
        if self.offset is None:
            with open(path, "rb") as fh:
                version = np.lib.format.read_magic(fh)
                reader = {(1, 0): np.lib.format.read_array_header_1_0,
                          (2, 0): np.lib.format.read_array_header_2_0}[version]
                shape, fortran, dtype = reader(fh)
                if shape != (3, self.n_genes) or fortran or dtype != np.float32:
                    raise ValueError(f"{path}: shape {shape} ({dtype}), reference has {self.n_genes} "
                                     "genes: was it quantified against another reference? Rerun quant.")
                self.offset = fh.tell()
        with open(path, "rb") as fh:
            fh.seek(self.offset)
            buf = fh.read(expected + 1)
        if len(buf) != expected:
            raise ValueError(f"{path}: {len(buf)} bytes of data, expected {expected} for "
                             f"{self.n_genes} genes: truncated, or quantified against another reference")
        return np.frombuffer(buf, dtype=np.float32).reshape(3, self.n_genes)


def _vectors(paths: list[Path], n_genes: int) -> Iterator[np.ndarray]:
    read = VectorReader(n_genes)
    for p in paths:
        yield read(p)  # float32 [3, genes]: counts, tpm, length


def build_matrix(sample_table: pd.DataFrame, vector_paths: list[Path], genes: pd.DataFrame,
                 out: Path, *, gene_types: list[str] | None = ("protein_coding",),
                 counts_from_abundance: CountsFrom = "no", renormalize_tpm: bool = True,
                 chunk: int = 256, threads: int = 2, progress: bool = True) -> Path:
    """Write the store at ``out`` from per-sample vectors (one path per row of ``sample_table``).

    TPM is renormalised to sum to 1e6 over the kept genes by default, so that samples with
    different shares of non-coding expression are on one scale.
    """
    if len(sample_table) != len(vector_paths):
        raise ValueError("one vector path per sample is needed")
    if len(sample_table) == 0:
        raise ValueError("no samples passed QC: nothing to build (see qc/failed.tsv)")
    keep = select_genes(genes, list(gene_types) if gene_types else None)
    mean_length = (_mean_length(vector_paths, len(genes))
                   if counts_from_abundance == "lengthScaledTPM" else None)
    read = VectorReader(len(genes))
    read(vector_paths[0])  # parse the header once, before the threads share the reader

    def fill(counts: np.ndarray, tpm: np.ndarray, j: int, path: Path) -> None:
        vec = read(path)  # [3, genes]
        if counts_from_abundance == "no":
            counts[j] = vec[0, keep]
        elif counts_from_abundance == "scaledTPM":
            counts[j] = scaled_tpm(vec[0], vec[1])[keep]
        else:
            counts[j] = length_scaled_tpm(vec[0], vec[1], mean_length)[keep]
        tpm[j] = vec[1, keep]

    writer = MatrixWriter(out, genes.iloc[keep].reset_index(drop=True), sample_table)
    try:
        _write_chunks(writer, vector_paths, fill, len(keep), chunk=chunk, threads=threads,
                      renormalize_tpm=renormalize_tpm, progress=progress)
    except BaseException:
        writer.abort()
        raise
    return writer.close()


def _mean_length(vector_paths: list[Path], n_genes: int) -> np.ndarray:
    """Mean effective gene length over samples: tximport's lengthScaledTPM averages it first,
    so this is one extra streamed pass."""
    total = np.zeros(n_genes, dtype=np.float64)
    for vec in _vectors(vector_paths, n_genes):
        total += vec[2]
    return total / len(vector_paths)


def renormalise_tpm(tpm: np.ndarray) -> np.ndarray:
    """Rows of ``tpm`` [samples, genes] scaled in place to sum to 1e6 (all-zero rows stay 0)."""
    sums = tpm.sum(axis=1, keepdims=True, dtype=np.float64)
    scale = np.divide(1e6, sums, out=np.zeros_like(sums), where=sums > 0)
    tpm *= scale.astype(np.float32)
    return tpm


def _write_chunks(writer: MatrixWriter, vector_paths: list[Path],
                  fill: Callable[[np.ndarray, np.ndarray, int, Path], None], n_genes: int, *,
                  chunk: int, threads: int, renormalize_tpm: bool, progress: bool) -> None:
    """Fill and write ``chunk`` samples at a time. Reading runs in ``threads`` workers; writing
    a finished chunk runs in one more thread while the next is read (file writes release the
    GIL), so at most two chunks are in memory."""
    pool = ThreadPoolExecutor(max_workers=threads)
    write_pool = ThreadPoolExecutor(max_workers=1)
    pending = None
    try:
        bar = tqdm(total=len(vector_paths), unit="sample", disable=not progress, desc="matrix")
        for start in range(0, len(vector_paths), chunk):
            paths = vector_paths[start : start + chunk]
            c = np.empty((len(paths), n_genes), dtype=np.float32)
            t = np.empty((len(paths), n_genes), dtype=np.float32)
            list(pool.map(lambda j, p: fill(c, t, j, p), range(len(paths)), paths))
            if renormalize_tpm:
                renormalise_tpm(t)
            log_t = np.log1p(t)
            if pending is not None:
                pending.result()
            pending = write_pool.submit(writer.write, start, counts=c, tpm=t, log1p_tpm=log_t)
            bar.update(len(paths))
        if pending is not None:
            pending.result()
        bar.close()
    finally:
        pool.shutdown()
        write_pool.shutdown()


def import_archs4(h5_path: Path, out: Path, *, gene_table: pd.DataFrame | None = None,
                  gene_types: list[str] | None = ("protein_coding",), chunk: int = 512,
                  progress: bool = True) -> Path:
    """Convert an ARCHS4-style HDF5 (gene counts, genes x samples) into a matrix store.

    ARCHS4 has no transcript lengths, so the ``tpm`` layer holds CPM (documented in the
    manifest's gene table) and ``log1p_tpm`` holds log1p(CPM).
    """
    from bulkfm.matrix.store import Archs4H5

    src = Archs4H5(Path(h5_path), transform="none")
    genes = pd.DataFrame({"gene_id": src.genes, "gene_name": src.genes, "gene_type": ""})
    if gene_table is not None:
        by_name = gene_table.drop_duplicates("gene_name").set_index("gene_name")
        known = genes["gene_name"].isin(by_name.index)
        genes.loc[known, "gene_id"] = by_name.loc[genes.loc[known, "gene_name"], "gene_id"].to_numpy()
        genes.loc[known, "gene_type"] = by_name.loc[genes.loc[known, "gene_name"], "gene_type"].to_numpy()
        keep = select_genes(genes, list(gene_types) if gene_types else None)
    else:
        log.warning("no gene table: keeping all %d genes (no protein-coding filter)", len(genes))
        keep = np.arange(len(genes))
    kept = genes.iloc[keep].drop_duplicates("gene_id").reset_index(drop=True)
    keep = keep[~genes.iloc[keep]["gene_id"].duplicated().to_numpy()]
    samples = pd.DataFrame({"sample_id": src.samples})
    writer = MatrixWriter(out, kept, samples)
    try:
        for start in tqdm(range(0, len(src.samples), chunk), disable=not progress, desc="archs4"):
            counts = src.rows(slice(start, start + chunk))[:, keep].astype(np.float64)
            lib = counts.sum(axis=1, keepdims=True)
            cpm = np.divide(counts * 1e6, lib, out=np.zeros_like(counts), where=lib > 0)
            writer.write(start, counts=counts.astype(np.float32), tpm=cpm.astype(np.float32),
                         log1p_tpm=np.log1p(cpm).astype(np.float32))
    except BaseException:
        writer.abort()
        raise
    return writer.close()
