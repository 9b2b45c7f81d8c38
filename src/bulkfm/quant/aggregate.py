"""Transcript → gene aggregation with tximport semantics, done inside the per-sample job.

For one sample (tximport ``summarizeToGene``):
  abundance_g = Σ TPM_t          counts_g = Σ NumReads_t
  length_g    = Σ TPM_t·EffLen_t / Σ TPM_t   (unweighted mean of EffLen_t where Σ TPM_t = 0)
``countsFromAbundance="scaledTPM"`` is per sample (abundance rescaled to the library size);
``"lengthScaledTPM"`` needs the mean gene length across samples and so is applied in the matrix
step, from the per-sample ``length`` vectors kept here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bulkfm.quant.reference import strip_version

log = logging.getLogger(__name__)

QUANT_COLUMNS = ["Name", "Length", "EffectiveLength", "TPM", "NumReads"]


class Tx2GeneMismatch(ValueError):
    """The quantification's transcripts do not belong to the tx2gene's reference."""


@dataclass(frozen=True)
class GeneVector:
    """One sample's gene-level values, aligned to the reference gene order."""

    counts: np.ndarray  # float32 [genes]
    tpm: np.ndarray  # float32 [genes]
    length: np.ndarray  # float32 [genes] abundance-weighted effective length
    n_transcripts: int
    n_unmapped_transcripts: int  # in quant.sf but not in tx2gene
    unmapped_reads: float  # NumReads on those transcripts

    def stacked(self) -> np.ndarray:
        """float32 [3, genes]: counts, tpm, length (the on-disk layout)."""
        return np.stack([self.counts, self.tpm, self.length]).astype(np.float32)


def read_quant(path: str | Path) -> pd.DataFrame:
    df = pd.read_csv(path, sep="\t", dtype={"Name": str})
    missing = set(QUANT_COLUMNS) - set(df.columns)
    if missing:
        raise ValueError(f"{path}: not a salmon quant.sf (missing columns {sorted(missing)})")
    return df


class GeneAggregator:
    """Precomputes the transcript → gene-index map once, then aggregates many samples fast."""

    def __init__(self, tx2gene: pd.DataFrame, genes: pd.DataFrame,
                 max_unmapped_fraction: float = 0.05) -> None:
        self.genes = genes.reset_index(drop=True)
        gene_index = pd.Series(np.arange(len(genes)), index=self.genes["gene_id"].to_numpy())
        tx_gene = strip_version(tx2gene["gene_id"].astype(str))
        idx = gene_index.reindex(tx_gene.to_numpy()).to_numpy()
        self._tx_to_gene = pd.Series(idx, index=tx2gene["transcript_id"].astype(str).to_numpy())
        self._tx_to_gene_nov = pd.Series(idx, index=strip_version(tx2gene["transcript_id"].astype(str)).to_numpy())
        self._tx_to_gene_nov = self._tx_to_gene_nov[~self._tx_to_gene_nov.index.duplicated()]
        self.max_unmapped_fraction = max_unmapped_fraction
        self._cache: tuple[tuple[str, ...], np.ndarray] | None = None

    def _gene_index(self, names: pd.Series) -> np.ndarray:
        key = tuple(names)  # quant.sf of one index lists the same transcripts in the same order
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        idx = self._tx_to_gene.reindex(names.to_numpy()).to_numpy()
        if np.isnan(idx).mean() > self.max_unmapped_fraction:
            # Versions differ between the index FASTA and tx2gene (tximport's ignoreTxVersion).
            alt = self._tx_to_gene_nov.reindex(strip_version(names).to_numpy()).to_numpy()
            if np.isnan(alt).mean() < np.isnan(idx).mean():
                idx = alt
        self._cache = (key, idx)
        return idx

    def aggregate(self, quant: pd.DataFrame, sample: str = "") -> GeneVector:
        idx = self._gene_index(quant["Name"].astype(str))
        missing = np.isnan(idx)
        frac = float(missing.mean()) if len(idx) else 1.0
        if frac > self.max_unmapped_fraction:
            example = quant["Name"].to_numpy()[missing][:3].tolist()
            raise Tx2GeneMismatch(
                f"sample {sample}: {missing.sum()} of {len(idx)} transcripts in quant.sf "
                f"({frac:.1%}) are not in tx2gene (e.g. {example}). The tx2gene does not match the "
                "salmon index: build both from the same transcriptome release (config "
                "quant.reference.transcripts and quant.reference.tx2gene)."
            )
        if missing.any():
            log.warning("sample %s: %d transcripts not in tx2gene (%.1f reads) counted as unmapped",
                        sample, missing.sum(), quant["NumReads"].to_numpy()[missing].sum())
        keep = ~missing
        gi = idx[keep].astype(np.int64)
        n = len(self.genes)
        tpm_t = quant["TPM"].to_numpy(np.float64)[keep]
        reads_t = quant["NumReads"].to_numpy(np.float64)[keep]
        efflen_t = quant["EffectiveLength"].to_numpy(np.float64)[keep]
        tpm = np.bincount(gi, weights=tpm_t, minlength=n)
        counts = np.bincount(gi, weights=reads_t, minlength=n)
        weighted_len = np.bincount(gi, weights=tpm_t * efflen_t, minlength=n)
        n_tx = np.bincount(gi, minlength=n)
        mean_len = np.divide(np.bincount(gi, weights=efflen_t, minlength=n), n_tx,
                             out=np.zeros(n), where=n_tx > 0)
        length = np.divide(weighted_len, tpm, out=mean_len.copy(), where=tpm > 0)
        return GeneVector(
            counts=counts.astype(np.float32), tpm=tpm.astype(np.float32),
            length=length.astype(np.float32), n_transcripts=int(len(idx)),
            n_unmapped_transcripts=int(missing.sum()),
            unmapped_reads=float(quant["NumReads"].to_numpy()[missing].sum()),
        )


def scaled_tpm(counts: np.ndarray, tpm: np.ndarray) -> np.ndarray:
    """tximport ``scaledTPM``: abundance rescaled so that it sums to the sample's read count."""
    total = tpm.sum()
    return tpm * (counts.sum() / total) if total > 0 else np.zeros_like(tpm)


def length_scaled_tpm(counts: np.ndarray, tpm: np.ndarray, mean_length: np.ndarray) -> np.ndarray:
    """tximport ``lengthScaledTPM`` for one sample, given the across-sample mean gene length."""
    raw = tpm * mean_length
    total = raw.sum()
    return raw * (counts.sum() / total) if total > 0 else np.zeros_like(tpm)
