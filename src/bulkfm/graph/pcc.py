"""Gene co-expression graph: per gene its top-k Pearson neighbours over the train samples.

Memory design (the all-pairs matrix is never held: 60,000 genes would need 14 GB):

1. One streamed pass over the train rows (``iter_row_batches``) accumulates per-gene shifted
   sums in float64 -> mean and standard deviation. Shifting by the first row keeps a constant
   gene at exactly zero variance (no cancellation noise), so it is isolated, never NaN.
2. Each row is standardised, ``z = (x - mean) / (std * sqrt(n - 1))``, so that for two genes
   ``sum_samples z_a z_b`` *is* their Pearson correlation and a block of correlations is one GEMM.
3. Genes are processed in chunks: ``C = Z[:, chunk]^T @ Z`` is ``[chunk, genes]``; the diagonal
   and zero-variance genes are masked, ``topk`` keeps k per row, the threshold drops the weak.

Where Z lives is chosen from the memory budget:

* ``in-memory`` (default when ``n_train x genes x 4 B`` fits, e.g. 10,000 x 20,000 = 0.8 GB):
  the rows read in pass 1 are kept and standardised in place, so the matrix is read once and
  each chunk is a single large GEMM (BLAS-efficient). Peak ~ Z + 3 x chunk x genes x 4 B.
* ``streamed`` (500,000 samples x 20,000 genes = 40 GB will not fit): for each gene chunk the
  train rows are streamed again and ``C += Z_b[:, chunk]^T @ Z_b`` accumulates over sample
  batches. Peak ~ batch x genes + 3 x chunk x genes floats, independent of the sample count;
  the cost is one extra read of the train rows per chunk, so the chunk is made as large as the
  budget allows (at 20,000 genes and 4 GB: one chunk of all genes -> 2 reads in total).

On a GPU the same code runs with the tensors on ``cuda``; on the CPU torch calls MKL/OpenBLAS.

Sign convention (``sign``): the default ``positive`` keeps a neighbour when PCC >= min_pcc,
BulkFormer's rule read literally ("PCC < 0.4 removed"). Reasons: a GCN averages neighbour
features, which suits co-expressed genes but blurs anti-correlated ones into their opposites,
and the symmetric normalisation D^-1/2 A D^-1/2 needs non-negative weights (a negative degree
has no square root). ``abs`` ranks by |PCC| and keeps strong negative correlations too, stored
with their sign, for models that can use signed edges (or to measure whether they help).
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from bulkfm.matrix.store import ExpressionMatrix, iter_row_batches

log = logging.getLogger(__name__)

Sign = Literal["positive", "abs"]
SPLITS = ("train", "val", "test")
_F32 = 4
DEFAULT_IN_MEMORY_CHUNK = 2048
MIN_SAMPLES = 2  # two samples define a correlation (of +-1); one does not
FEW_SAMPLES = 20


# --------------------------------------------------------------------------- train samples
def train_indices(split_path: str | os.PathLike[str] | None, samples: list[str]) -> np.ndarray:
    """Row indices of the train samples named in ``splits.tsv`` (columns sample_id, split).

    Without a split file every sample is used (with a warning: the graph then sees the samples
    the model is evaluated on, which leaks held-out structure into the prior).
    """
    if split_path is None:
        log.warning("no split file given: building the graph from all %d samples, including "
                    "any later used for validation/test (pass --split to avoid leakage)",
                    len(samples))
        return np.arange(len(samples))
    split_path = Path(split_path)
    if not split_path.exists():
        raise FileNotFoundError(f"{split_path}: split file not found (written by `bulkfm train "
                                "split`, or give none to use all samples)")
    table = pd.read_csv(split_path, sep="\t", dtype=str, keep_default_na=False)
    missing = {"sample_id", "split"} - set(table.columns)
    if missing:
        raise ValueError(f"{split_path}: missing column(s) {sorted(missing)}; expected a TSV with "
                         f"columns sample_id and split ({'/'.join(SPLITS)})")
    bad = table.loc[~table["split"].isin(SPLITS), "split"].unique()
    if len(bad):
        raise ValueError(f"{split_path}: unknown split value(s) {list(bad)[:5]}; allowed: "
                         f"{', '.join(SPLITS)}")
    dup = table["sample_id"][table["sample_id"].duplicated()]
    if len(dup):
        raise ValueError(f"{split_path}: sample {dup.iloc[0]!r} listed more than once")
    position = {s: i for i, s in enumerate(samples)}
    unknown = [s for s in table["sample_id"] if s not in position]
    if unknown:
        raise ValueError(f"{split_path}: {len(unknown)} sample(s) are not in the matrix (e.g. "
                         f"{', '.join(unknown[:3])}); the split and the matrix must come from the "
                         "same run: rebuild the split from this matrix")
    train = table.loc[table["split"] == "train", "sample_id"]
    if len(train) < MIN_SAMPLES:
        raise ValueError(f"{split_path}: {len(train)} train sample(s); a correlation graph needs "
                         f"at least {MIN_SAMPLES} (check the split fractions)")
    not_listed = len(samples) - len(table)
    if not_listed:
        log.info("%s: %d matrix samples are in no split and are ignored", split_path, not_listed)
    return np.sort(np.fromiter((position[s] for s in train), dtype=np.int64, count=len(train)))


# --------------------------------------------------------------------------- pass 1: stats
@dataclass(frozen=True)
class GeneStats:
    mean: np.ndarray  # float64 [genes]
    std: np.ndarray  # float64 [genes] (sample std, ddof=1)
    n: int

    @property
    def constant(self) -> np.ndarray:
        """bool [genes]: no usable variance (isolated in the graph)."""
        # Relative floor: below ~1e-7 x |mean| a float32 value cannot vary at all.
        return self.std <= 1e-7 * np.maximum(np.abs(self.mean), 1.0)

    def scale(self) -> np.ndarray:
        """float32 [genes]: 1 / (std sqrt(n-1)); 0 for constant genes so their z is 0."""
        scale = np.zeros_like(self.std)
        ok = ~self.constant
        scale[ok] = 1.0 / (self.std[ok] * math.sqrt(self.n - 1))
        return scale.astype(np.float32)


class _Accumulator:
    """Shifted sums (shift = first row): constant genes get exactly zero variance."""

    def __init__(self) -> None:
        self.shift: np.ndarray | None = None
        self.s1: np.ndarray | None = None
        self.s2: np.ndarray | None = None
        self.n = 0

    def add(self, x: np.ndarray) -> None:
        if self.shift is None:
            self.shift = x[0].astype(np.float64)
            self.s1 = np.zeros_like(self.shift)
            self.s2 = np.zeros_like(self.shift)
        d = x.astype(np.float64) - self.shift
        self.s1 += d.sum(axis=0)
        self.s2 += np.einsum("ij,ij->j", d, d)
        self.n += x.shape[0]

    def stats(self) -> GeneStats:
        assert self.shift is not None and self.s1 is not None and self.s2 is not None
        mean_d = self.s1 / self.n
        var = np.maximum(self.s2 - self.n * mean_d * mean_d, 0.0) / (self.n - 1)
        return GeneStats(mean=self.shift + mean_d, std=np.sqrt(var), n=self.n)


# --------------------------------------------------------------------------- top-k per chunk
@dataclass(frozen=True)
class Edges:
    source: np.ndarray  # int64 [E] gene index
    target: np.ndarray  # int64 [E]
    pcc: np.ndarray  # float32 [E]


def _select(block: torch.Tensor, start: int, k: int, min_pcc: float, sign: Sign,
            excluded: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """block [c, genes] of correlations for genes start..start+c -> kept (row, col, pcc)."""
    c = block.shape[0]
    block.clamp_(-1.0, 1.0)  # float32 rounding can give 1.0000001
    score = block.abs() if sign == "abs" else block.clone()
    rows = torch.arange(c, device=block.device)
    score[rows, start + rows] = -math.inf  # no self-loops
    score[:, excluded] = -math.inf  # constant genes have no neighbours ...
    top, col = score.topk(k, dim=1, sorted=True)  # [c, k]
    keep = top >= min_pcc  # -inf never passes
    keep[excluded[start : start + c]] = False  # ... and are no one's neighbour
    row = rows.unsqueeze(1).expand(c, k)[keep] + start
    col = col[keep]
    return row, col, block[row - start, col]


def _chunk_rows(budget_bytes: int, n_genes: int, reserved: int) -> int:
    # A chunk costs its block, the score copy and topk scratch: ~3 floats per (row, gene).
    return max(1, min(n_genes, (budget_bytes - reserved) // (3 * n_genes * _F32)))


@dataclass(frozen=True)
class PccResult:
    edges: Edges
    stats: GeneStats
    mode: str  # "in-memory" | "streamed"
    chunk_genes: int
    passes: int  # reads of the train rows


def pcc_topk(
    matrix: ExpressionMatrix,
    rows: np.ndarray,
    *,
    top_k: int = 20,
    min_pcc: float = 0.4,
    sign: Sign = "positive",
    chunk_genes: int | None = None,
    batch_samples: int = 1024,
    max_memory_gb: float = 8.0,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> PccResult:
    """Top-k Pearson neighbours of every gene over ``rows`` of ``matrix`` (see module doc)."""
    _check_args(sign, min_pcc, top_k)
    device = torch.device(device)
    n, g = len(rows), matrix.shape[1]
    if n < MIN_SAMPLES:
        raise ValueError(f"{n} samples: a correlation graph needs at least {MIN_SAMPLES}")
    if n < FEW_SAMPLES:
        log.warning("only %d samples: correlations this few are mostly noise (fine for the demo, "
                    "not for a model)", n)
    in_memory, chunk = _plan(n, g, max_memory_gb, device, batch_samples, chunk_genes)
    n_chunks = math.ceil(g / chunk)
    stats, cache = _statistics(matrix, rows, batch_samples, in_memory, progress)
    log.info("%d train samples x %d genes; %d constant genes will be isolated; mode %s, "
             "chunk %d genes (%d chunk(s)), device %s", n, g, int(stats.constant.sum()),
             "in-memory" if in_memory else "streamed", chunk, n_chunks, device)
    src, dst, pcc = _neighbours(matrix, rows, stats, cache, k=min(top_k, g - 1), min_pcc=min_pcc,
                                sign=sign, chunk=chunk, batch_samples=batch_samples,
                                device=device, progress=progress)
    return PccResult(
        edges=Edges(source=src.astype(np.int64), target=dst.astype(np.int64),
                    pcc=pcc.astype(np.float32)),
        stats=stats, mode="in-memory" if in_memory else "streamed", chunk_genes=chunk,
        passes=1 if in_memory else 1 + n_chunks,
    )


def _check_args(sign: str, min_pcc: float, top_k: int) -> None:
    if sign not in ("positive", "abs"):
        raise ValueError(f"sign must be 'positive' or 'abs', not {sign!r}")
    if not 0.0 <= min_pcc <= 1.0:
        raise ValueError(f"min_pcc must be in [0, 1], got {min_pcc}")
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")


def _plan(n: int, g: int, max_memory_gb: float, device: torch.device, batch_samples: int,
          chunk_genes: int | None) -> tuple[bool, int]:
    """-> (hold the standardised rows in memory?, genes per correlation block)."""
    budget = int(max_memory_gb * 2**30)
    in_memory = n * g * _F32 <= budget // 2
    if device.type == "cuda":  # Z must also fit on the GPU, beside a few [chunk, genes] blocks
        free, _ = torch.cuda.mem_get_info(device)
        budget = min(budget, int(free * 0.8))
        in_memory = in_memory and n * g * _F32 <= budget // 2
    batch_bytes = 2 * batch_samples * g * _F32
    reserved = n * g * _F32 if in_memory else batch_bytes
    # In memory, moderate chunks keep the block cache-friendly (2048 measured fastest on TCGA);
    # streamed, every chunk costs a read of the train rows, so take the largest that fits.
    chunk = chunk_genes or _chunk_rows(budget, g, reserved)
    if in_memory and not chunk_genes:
        chunk = min(chunk, DEFAULT_IN_MEMORY_CHUNK)
    chunk = max(1, min(chunk, g))
    n_chunks = math.ceil(g / chunk)
    if not in_memory and n_chunks > 8:
        log.warning("memory budget %.1f GB allows %d-gene chunks: the train rows will be read "
                    "%d times; raise --max-memory-gb to read them fewer times", max_memory_gb,
                    chunk, n_chunks + 1)
    return in_memory, chunk


def _statistics(matrix: ExpressionMatrix, rows: np.ndarray, batch_samples: int, in_memory: bool,
                progress: bool) -> tuple[GeneStats, np.ndarray | None]:
    """Pass 1: per-gene statistics, and in memory mode the rows standardised in place (Z)."""
    acc = _Accumulator()
    cache = np.empty((len(rows), matrix.shape[1]), dtype=np.float32) if in_memory else None
    filled = 0
    bar = tqdm(total=len(rows), desc="graph: gene means/stds", unit="sample", disable=not progress)
    for _, x in iter_row_batches(matrix, batch_samples, rows):
        acc.add(x)
        if cache is not None:
            cache[filled : filled + len(x)] = x
        filled += len(x)
        bar.update(len(x))
    bar.close()
    stats = acc.stats()
    if cache is not None:
        cache -= stats.mean.astype(np.float32)  # in place: no second [n, g] copy
        cache *= stats.scale()
    return stats, cache


def _neighbours(matrix: ExpressionMatrix, rows: np.ndarray, stats: GeneStats,
                cache: np.ndarray | None, *, k: int, min_pcc: float, sign: Sign, chunk: int,
                batch_samples: int, device: torch.device, progress: bool
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pass 2: correlation blocks [chunk, genes] and their top-k, from Z in memory or from the
    rows streamed once per block."""
    g = matrix.shape[1]
    mean32, scale32 = stats.mean.astype(np.float32), stats.scale()
    excluded = torch.from_numpy(stats.constant).to(device)
    z_all = torch.from_numpy(cache).to(device) if cache is not None else None  # [n, g]
    found: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    bar = tqdm(total=g, desc="graph: correlation blocks", unit="gene", disable=not progress)
    for start in range(0, g, chunk):
        stop = min(start + chunk, g)
        if z_all is not None:
            block = z_all[:, start:stop].T @ z_all  # [c, g]
        else:
            block = torch.zeros(stop - start, g, dtype=torch.float32, device=device)
            for _, x in iter_row_batches(matrix, batch_samples, rows):
                zb = torch.from_numpy((x - mean32) * scale32).to(device)  # [b, g]
                block.addmm_(zb[:, start:stop].T, zb)
        row, col, val = _select(block, start, k, min_pcc, sign, excluded)
        found.append((row.cpu(), col.cpu(), val.cpu()))
        del block
        bar.update(stop - start)
    bar.close()
    src, dst, pcc = (torch.cat(p).numpy() for p in zip(*found, strict=True))
    return src, dst, pcc
