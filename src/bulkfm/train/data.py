"""Streaming training data: sample-row batches of a gene subset, seeded order and masks.

Nothing here holds samples x genes: statistics are running sums over row batches, a batch is
read when its step comes. The order of samples at step ``t`` and its mask are pure functions of
(seed, step, rank), so a resumed run reads exactly what an uninterrupted one would.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DistributedSampler
from tqdm.auto import tqdm

from bulkfm.embed.gene_ids import match_genes
from bulkfm.matrix.store import ExpressionMatrix, iter_row_batches

log = logging.getLogger(__name__)


class DataError(ValueError):
    """Bad values or genes in an input matrix (message names the file, sample and fix)."""


class SubsetMatrix:
    """A column subset (and order) of a matrix, read through the same interface.

    ``gene_index[j] = -1`` marks a model gene the matrix lacks: it is returned as ``fill``
    (the mask value: the model treats it as a masked gene).
    """

    def __init__(self, matrix: ExpressionMatrix, gene_index: np.ndarray, genes: list[str],
                 fill: float = 0.0) -> None:
        self.matrix, self.gene_index, self.genes = matrix, np.asarray(gene_index), genes
        self.samples = matrix.samples
        self.path = getattr(matrix, "path", "matrix")
        self.fill = fill
        self._present = self.gene_index >= 0

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.samples), len(self.genes))

    def rows(self, index: Sequence[int] | np.ndarray | slice) -> np.ndarray:
        idx = np.arange(len(self.samples))[index] if isinstance(index, slice) else np.asarray(index)
        full = self.matrix.rows(idx)  # validated by the reader
        if self._present.all():
            return np.ascontiguousarray(full[:, self.gene_index])
        out = np.full((len(idx), len(self.genes)), self.fill, dtype=np.float32)
        out[:, self._present] = full[:, self.gene_index[self._present]]
        return out


@dataclass(frozen=True)
class GeneMoments:
    mean: np.ndarray  # float64 [genes]
    std: np.ndarray  # float64 [genes], ddof=1
    n: int


def gene_moments(matrix: ExpressionMatrix, rows: np.ndarray, batch: int = 256,
                 progress: bool = True) -> GeneMoments:
    """Per-gene mean and std over ``rows``, streamed (shifted sums: no cancellation)."""
    shift = s1 = s2 = None
    n = 0
    for idx, x in tqdm(iter_row_batches(matrix, batch, rows), desc="gene statistics",
                       total=-(-len(rows) // batch), disable=not progress, unit="batch"):
        x = x.astype(np.float64)
        if shift is None:
            shift, s1, s2 = x[0].copy(), np.zeros(x.shape[1]), np.zeros(x.shape[1])
        d = x - shift
        s1 += d.sum(0)
        s2 += (d * d).sum(0)
        n += len(x)
    if n < 2:
        raise DataError(f"{n} training sample(s): need at least 2 for gene statistics")
    mean_d = s1 / n
    var = np.maximum(s2 - n * mean_d**2, 0.0) / (n - 1)
    return GeneMoments(mean=shift + mean_d, std=np.sqrt(var), n=n)


def select_genes(moments: GeneMoments, max_genes: int) -> np.ndarray:
    """Column indices (matrix order) of the top ``max_genes`` by variance; all if 0."""
    g = len(moments.std)
    if max_genes <= 0 or max_genes >= g:
        return np.arange(g)
    top = np.argsort(-moments.std, kind="stable")[:max_genes]
    return np.sort(top)


def align_genes(model_genes: list[str], matrix: ExpressionMatrix, *, allow_missing: float = 0.0,
                names: Sequence[str] | None = None) -> np.ndarray:
    """Matrix column of each model gene (-1 if absent). More missing than ``allow_missing``
    (a fraction) is an error: the checkpoint was trained on another gene list."""
    aliases = None if names is None else [[n] for n in names]
    match = match_genes(model_genes, matrix.genes, reference_aliases=aliases)
    index = np.asarray(match.index, dtype=np.int64)
    missing = int((index < 0).sum())
    where = str(getattr(matrix, "path", "matrix"))
    if missing:
        example = ", ".join(g for g, i in zip(model_genes, index, strict=True) if i < 0)[:200]
        frac = missing / len(model_genes)
        if frac > allow_missing:
            raise DataError(
                f"{where}: {missing} of {len(model_genes)} model genes are not in the matrix "
                f"(e.g. {example}); the checkpoint was trained on another gene list. Use a matrix "
                "with the same genes, or allow up to a fraction of missing genes (they are then "
                "fed to the model as masked) with --allow-missing-genes")
        log.warning("%s: %d of %d model genes absent; fed as masked values", where, missing,
                    len(model_genes))
    extra = len(matrix.genes) - int((index >= 0).sum())
    if extra:
        log.info("%s: %d matrix genes are not model genes and are ignored", where, extra)
    return index


# --------------------------------------------------------------------------- batches & masks
class _Index(torch.utils.data.Dataset):
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


class BatchSchedule:
    """Which train rows a rank reads at each step: DistributedSampler order per epoch."""

    def __init__(self, rows: np.ndarray, batch_size: int, seed: int, rank: int = 0,
                 world: int = 1) -> None:
        self.rows, self.seed, self.rank, self.world = np.asarray(rows), seed, rank, world
        per_rank = len(rows) // world
        if per_rank < 1:
            raise DataError(f"{len(rows)} training sample(s) for {world} process(es)")
        if batch_size > per_rank:
            log.warning("batch size %d > %d training samples per process; using %d",
                        batch_size, per_rank, per_rank)
            batch_size = per_rank
        self.batch_size = batch_size
        self.batches_per_epoch = per_rank // batch_size
        self._epoch, self._order = -1, np.empty(0, dtype=np.int64)

    def batch(self, step: int) -> np.ndarray:
        epoch, i = divmod(step, self.batches_per_epoch)
        if epoch != self._epoch:
            sampler = DistributedSampler(_Index(len(self.rows)), num_replicas=self.world,
                                         rank=self.rank, shuffle=True, seed=self.seed,
                                         drop_last=True)
            sampler.set_epoch(epoch)
            self._epoch, self._order = epoch, np.fromiter(iter(sampler), dtype=np.int64)
        return self.rows[self._order[i * self.batch_size : (i + 1) * self.batch_size]]


def step_generator(seed: int, *parts: int) -> torch.Generator:
    """A generator seeded from (seed, parts...): masks depend on the step, not on history."""
    mixed = np.random.SeedSequence([seed, *parts]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(mixed) & ((1 << 63) - 1))


def random_mask(shape: tuple[int, int], fraction: float, gen: torch.Generator) -> torch.Tensor:
    """bool [B, G]: exactly round(fraction * G) masked genes per sample (at least one)."""
    b, g = shape
    k = max(1, round(fraction * g))
    scores = torch.rand(b, g, generator=gen)
    idx = scores.topk(k, dim=1).indices
    mask = torch.zeros(b, g, dtype=torch.bool)
    mask.scatter_(1, idx, True)
    return mask


def apply_mask(x: torch.Tensor, mask: torch.Tensor, mask_value: float) -> torch.Tensor:
    return torch.where(mask, torch.full_like(x, mask_value), x)


def split_rows(split: pd.DataFrame, samples: list[str], name: str) -> np.ndarray:
    pos = {s: i for i, s in enumerate(samples)}
    return np.sort(np.array([pos[s] for s in split.loc[split["split"] == name, "sample_id"]],
                            dtype=np.int64))
