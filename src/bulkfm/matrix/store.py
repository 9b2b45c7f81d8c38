"""Expression matrices that are read in row (sample) batches, never whole.

The workflow's own format (a *matrix store*) is a directory::

    matrix/
      matrix.json        manifest: format, version, shape, layers, dtype
      genes.parquet      gene_id, gene_name, gene_type  (row i = column i of every layer)
      samples.parquet    sample_id (+ any per-sample columns)
      counts.npy         float32 [samples, genes]   estimated read counts
      tpm.npy            float32 [samples, genes]   TPM renormalised over the kept genes
      log1p_tpm.npy      float32 [samples, genes]   log1p(TPM): the model's input

Why ``.npy`` (row-major, memory-mapped): a batch of samples is one contiguous read, random
access costs a seek, the writer fills it chunk by chunk with flat memory, and numpy/torch read
it with no extra dependency. Chunked Parquet needs a whole row group decoded per access and
is column-oriented (genes), the wrong axis for sample batches. Measured in
``benchmarks/matrix_io.py``.

Two more inputs are read through the same interface, for users who start from processed data:
a Parquet table with a ``gene`` column and one column per sample (genes x samples, as TCGA and
most GEO supplements), and an ARCHS4-style HDF5 (``data/expression`` genes x samples,
``meta/genes/symbol``, ``meta/samples/geo_accession``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from bulkfm.common.atomic import atomic_path

FORMAT = "bulkfm-matrix"
VERSION = 1
LAYERS = ("counts", "tpm", "log1p_tpm")
Transform = Literal["auto", "log1p", "none"]


class ExpressionMatrix(Protocol):
    """What training and evaluation need from any matrix: sample rows, fixed gene columns."""

    genes: list[str]  # primary gene identifiers, one per column
    samples: list[str]  # sample identifiers, one per row

    @property
    def shape(self) -> tuple[int, int]: ...

    def rows(self, index: Sequence[int] | np.ndarray | slice) -> np.ndarray:
        """float32 [len(index), n_genes] on the log1p scale, in the order asked for; NaN/Inf or
        negative values raise ValueError naming the sample (``validate_values``)."""
        ...


def iter_row_batches(
    matrix: ExpressionMatrix, batch_size: int, indices: Sequence[int] | np.ndarray | None = None
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(row_indices, values)`` batches; memory is O(batch_size x genes)."""
    idx = np.arange(matrix.shape[0]) if indices is None else np.asarray(indices, dtype=np.int64)
    for start in range(0, len(idx), batch_size):
        chunk = idx[start : start + batch_size]
        yield chunk, matrix.rows(chunk)


def validate_values(values: np.ndarray, samples: Sequence[str], where: str) -> np.ndarray:
    """Refuse NaN/Inf and negative values; ``samples`` names the rows, so the error says which
    sample to fix (bulkfm never guesses missing expression)."""
    finite = np.isfinite(values)
    if not finite.all():
        r = int(np.nonzero(~finite.all(axis=1))[0][0])
        raise ValueError(f"{where}: sample {samples[r]!r} has {int((~finite[r]).sum())} NaN/Inf "
                         "values; impute or drop that sample first")
    if (values < 0).any():
        r = int(np.nonzero((values < 0).any(axis=1))[0][0])
        raise ValueError(f"{where}: sample {samples[r]!r} has negative values (min "
                         f"{values[r].min():.3g}); give TPM/counts or log1p of them, not "
                         "log-ratios or z-scores")
    return values


# --------------------------------------------------------------------------- bulkfm store
@dataclass
class MatrixStore:
    """A bulkfm matrix store opened read-only (memory-mapped)."""

    path: Path
    layer: str = "log1p_tpm"
    genes: list[str] = field(init=False)
    gene_names: list[str] = field(init=False)
    gene_table: pd.DataFrame = field(init=False)
    sample_table: pd.DataFrame = field(init=False)
    samples: list[str] = field(init=False)
    _data: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        manifest = read_manifest(self.path)
        if self.layer not in manifest["layers"]:
            raise ValueError(f"{self.path}: no layer {self.layer!r}; has {manifest['layers']}")
        self.gene_table = pd.read_parquet(self.path / "genes.parquet")
        self.sample_table = pd.read_parquet(self.path / "samples.parquet")
        self.genes = self.gene_table["gene_id"].astype(str).tolist()
        self.gene_names = self.gene_table["gene_name"].astype(str).tolist()
        self.samples = self.sample_table["sample_id"].astype(str).tolist()
        self._data = np.load(self.path / f"{self.layer}.npy", mmap_mode="r")
        if self._data.shape != (len(self.samples), len(self.genes)):
            raise ValueError(f"{self.path}: {self.layer}.npy shape {self._data.shape} does not "
                             f"match {len(self.samples)} samples x {len(self.genes)} genes")

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.samples), len(self.genes))

    def rows(self, index: Sequence[int] | np.ndarray | slice) -> np.ndarray:
        if isinstance(index, slice):
            idx = np.arange(len(self.samples))[index]
            out = np.array(self._data[index], dtype=np.float32)  # a copy, never a memmap view
        else:
            idx = np.asarray(index, dtype=np.int64)
            # Sorted fancy indexing reads the memmap front to back; restore the asked order after.
            order = np.argsort(idx, kind="stable")
            out = np.empty((len(idx), self._data.shape[1]), dtype=np.float32)
            out[order] = self._data[idx[order]]
        return validate_values(out, [self.samples[i] for i in idx], str(self.path))


def read_manifest(path: Path) -> dict:
    manifest_path = Path(path) / "matrix.json"
    if not manifest_path.exists():
        raise FileNotFoundError(f"{path}: not a bulkfm matrix store (no matrix.json)")
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{path}: matrix.json format is {manifest.get('format')!r}, not {FORMAT!r}")
    return manifest


class MatrixWriter:
    """Fill a matrix store chunk by chunk; it appears at ``path`` only when ``close()`` succeeds.

    Memory is the chunk being written, whatever the number of samples.
    """

    def __init__(self, path: str | os.PathLike[str], genes: pd.DataFrame, samples: pd.DataFrame,
                 layers: Sequence[str] = LAYERS, dtype: str = "float32") -> None:
        for col in ("gene_id", "gene_name"):
            if col not in genes.columns:
                raise ValueError(f"gene table needs a {col!r} column")
        if "sample_id" not in samples.columns:
            raise ValueError("sample table needs a 'sample_id' column")
        if samples["sample_id"].duplicated().any():
            dup = samples.loc[samples["sample_id"].duplicated(), "sample_id"].iloc[0]
            raise ValueError(f"duplicate sample_id {dup!r} in the matrix")
        self.path = Path(path)
        self._ctx = atomic_path(self.path)
        self._tmp = self._ctx.__enter__()
        self._tmp.mkdir()
        self.n_samples, self.n_genes = len(samples), len(genes)
        genes.reset_index(drop=True).to_parquet(self._tmp / "genes.parquet", index=False)
        samples.reset_index(drop=True).to_parquet(self._tmp / "samples.parquet", index=False)
        self.layers = tuple(layers)
        self._dtype = np.dtype(dtype)
        # Plain sequential writes, not a memmap: written pages of a memmap count in the
        # process's RSS, so memory would grow with the matrix; a file handle keeps it flat.
        self._files = {}
        header = {"descr": np.lib.format.dtype_to_descr(self._dtype), "fortran_order": False,
                  "shape": (self.n_samples, self.n_genes)}
        for name in self.layers:
            fh = open(self._tmp / f"{name}.npy", "wb")
            np.lib.format.write_array_header_1_0(fh, header)
            self._files[name] = fh
        self._filled = 0

    def write(self, start: int, **layers: np.ndarray) -> None:
        """Append rows ``start:start+n`` of every layer (rows come in order)."""
        if start != self._filled:
            raise ValueError(f"rows must be written in order: expected start {self._filled}, got {start}")
        if set(layers) != set(self.layers):
            raise ValueError(f"write needs every layer {self.layers}, got {sorted(layers)}")
        n = {np.asarray(v).shape[0] for v in layers.values()}
        if len(n) != 1:
            raise ValueError("every layer needs the same number of rows")
        for name, values in layers.items():
            values = np.ascontiguousarray(values, dtype=self._dtype)
            if values.ndim != 2 or values.shape[1] != self.n_genes:
                raise ValueError(f"layer {name}: expected [n, {self.n_genes}], got {values.shape}")
            self._files[name].write(values.tobytes())
        self._filled += n.pop()

    def close(self) -> Path:
        if self._filled != self.n_samples:
            self.abort()
            raise RuntimeError(f"matrix incomplete: {self._filled} of {self.n_samples} rows written")
        for fh in self._files.values():
            fh.close()
        self._files.clear()
        manifest = {"format": FORMAT, "version": VERSION, "n_samples": self.n_samples,
                    "n_genes": self.n_genes, "layers": list(self.layers),
                    "dtype": self._dtype.name, "orientation": "samples x genes"}
        (self._tmp / "matrix.json").write_text(json.dumps(manifest, indent=2) + "\n")
        self._ctx.__exit__(None, None, None)
        return self.path

    def abort(self) -> None:
        for fh in self._files.values():
            fh.close()
        self._files.clear()
        # Leave the atomic context as on an error: the temporary directory is removed.
        self._ctx.__exit__(RuntimeError, RuntimeError("matrix aborted"), None)


# --------------------------------------------------------------------------- Parquet table
def _needs_log(sample_values: np.ndarray) -> bool:
    # log1p(TPM) rarely exceeds ~15 (e^15 TPM is impossible); linear TPM/counts do.
    return float(np.nanmax(sample_values)) > 30.0


@dataclass
class ParquetGeneTable:
    """A Parquet table, genes x samples: a ``gene`` column, then one column per sample.

    Sample batches read only their columns (Parquet is columnar), so memory is O(batch x genes).
    """

    path: Path
    transform: Transform = "auto"
    gene_column: str = "gene"
    genes: list[str] = field(init=False)
    samples: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        self._file = pq.ParquetFile(self.path)
        names = self._file.schema_arrow.names
        if self.gene_column not in names:
            raise ValueError(f"{self.path}: no {self.gene_column!r} column; expected a gene x "
                             "sample table with a gene column and one column per sample")
        self.samples = [c for c in names if c != self.gene_column and not c.startswith("__")]
        if not self.samples:
            raise EmptyMatrixError(f"{self.path}: no sample columns beside {self.gene_column!r}: "
                                   "the matrix has 0 samples; nothing to split, train or evaluate")
        genes = self._file.read(columns=[self.gene_column]).column(0).to_pylist()
        self.genes = [str(g) for g in genes]
        if len(set(self.genes)) != len(self.genes):
            raise ValueError(f"{self.path}: duplicate gene identifiers in {self.gene_column!r}")
        if self.transform == "auto":
            probe = self._read([0])
            self.transform = "log1p" if _needs_log(probe) else "none"

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.samples), len(self.genes))

    def _read(self, idx: Sequence[int]) -> np.ndarray:
        cols = [self.samples[i] for i in idx]
        table = self._file.read(columns=cols)
        values = np.column_stack([table.column(c).to_numpy(zero_copy_only=False) for c in cols])
        return values.T.astype(np.float32, copy=False)

    def rows(self, index: Sequence[int] | np.ndarray | slice) -> np.ndarray:
        idx = list(map(int, range(len(self.samples))[index] if isinstance(index, slice) else index))
        values = validate_values(self._read(idx), [self.samples[i] for i in idx], str(self.path))
        return np.log1p(values) if self.transform == "log1p" else values


# --------------------------------------------------------------------------- ARCHS4 HDF5
@dataclass
class Archs4H5:
    """ARCHS4-style HDF5: ``data/expression`` [genes, samples] counts + gene/sample metadata.

    Counts are turned into log1p(CPM): ARCHS4 ships no transcript lengths, so TPM cannot be
    computed; CPM is its length-free analogue and keeps the model's input on the same scale.
    """

    path: Path
    transform: Literal["log1p_cpm", "log1p", "none"] = "log1p_cpm"
    genes: list[str] = field(init=False)
    samples: list[str] = field(init=False)

    def __post_init__(self) -> None:
        import h5py

        self.path = Path(self.path)
        self._h5 = h5py.File(self.path, "r")
        try:
            self._data = self._h5["data/expression"]
        except KeyError as exc:
            raise ValueError(f"{self.path}: no data/expression dataset (not ARCHS4-style)") from exc
        self.genes = _decode(self._first(["meta/genes/symbol", "meta/genes/gene_symbol",
                                          "meta/genes/genes", "meta/genes/ensembl_gene_id"]))
        self.samples = _decode(self._first(["meta/samples/geo_accession",
                                            "meta/samples/sample_id"]))
        if self._data.shape != (len(self.genes), len(self.samples)):
            raise ValueError(f"{self.path}: data/expression shape {self._data.shape} does not "
                             f"match {len(self.genes)} genes x {len(self.samples)} samples")

    def _first(self, keys: list[str]):
        for key in keys:
            if key in self._h5:
                return self._h5[key][:]
        raise ValueError(f"{self.path}: none of {keys} present")

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.samples), len(self.genes))

    def rows(self, index: Sequence[int] | np.ndarray | slice) -> np.ndarray:
        idx = np.arange(len(self.samples))[index] if isinstance(index, slice) else np.asarray(index)
        order = np.argsort(idx, kind="stable")
        sorted_idx = idx[order]
        uniq, inverse = np.unique(sorted_idx, return_inverse=True)  # h5py needs increasing indices
        block = self._data[:, uniq].T.astype(np.float32)[inverse]
        out = np.empty_like(block)
        out[order] = block
        out = validate_values(out, [self.samples[i] for i in idx], str(self.path))
        if self.transform == "log1p_cpm":
            lib = out.sum(axis=1, keepdims=True)
            lib[lib == 0] = 1.0
            return np.log1p(out / lib * 1e6)
        return np.log1p(out) if self.transform == "log1p" else out


def _decode(values: np.ndarray) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


class EmptyMatrixError(ValueError):
    """A matrix with no samples (a ValueError, so the stage CLIs print it without a traceback)."""


def open_matrix(path: str | os.PathLike[str], transform: Transform = "auto") -> ExpressionMatrix:
    """Open any supported matrix by what it is: a store directory, ``.parquet`` or ``.h5``."""
    path = Path(path)
    matrix: ExpressionMatrix | None = None
    if path.is_dir():
        matrix = MatrixStore(path)
    elif path.suffix.lower() == ".parquet":
        matrix = ParquetGeneTable(path, transform=transform)
    elif path.suffix.lower() in (".h5", ".hdf5"):
        matrix = Archs4H5(path)
    if matrix is not None:
        if matrix.shape[0] == 0:  # every later step indexes samples: say so here, not IndexError
            raise EmptyMatrixError(f"{path}: the matrix has 0 samples; nothing to split, train or "
                                   "evaluate (from the workflow: every sample failed QC, see "
                                   "qc/failed.tsv)")
        return matrix
    raise ValueError(f"{path}: unknown matrix format; give a bulkfm matrix directory, a .parquet "
                     "gene x sample table or an ARCHS4-style .h5")
