"""QC gate on Salmon's own reports (``aux_info/meta_info.json``, ``lib_format_counts.json``).

The library type is read from the per-orientation fragment counts, not ``expected_format``:
Salmon 1.10 with ``-l A`` can report "IU" for a stranded ISR library (seen on the bundled
ENCSR653DFZ reads: 8,861 ISR vs 29 ISF fragments, resources/example/README.md).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

FORWARD = ("ISF", "SF", "MSF", "OSF")
REVERSE = ("ISR", "SR", "MSR", "OSR")


@dataclass(frozen=True)
class QCThresholds:
    min_mapping_rate: float = 30.0  # percent of processed fragments that mapped
    min_reads_processed: int = 0
    min_reads_mapped: int = 0
    # "any", or require "stranded" / "unstranded" libraries (mixing them biases a matrix)
    library_type: str = "any"
    strand_threshold: float = 0.8  # share of one orientation above which a library is stranded


@dataclass
class QCResult:
    passed: bool
    reasons: list[str] = field(default_factory=list)
    reads_processed: int = 0
    reads_mapped: int = 0
    mapping_rate: float = 0.0
    library_type: str = "unknown"  # stranded-forward | stranded-reverse | unstranded
    strand_fraction_reverse: float = float("nan")
    salmon_expected_format: str = ""

    def to_dict(self) -> dict:
        d = asdict(self)
        d["reasons"] = "; ".join(self.reasons)
        return d


def infer_library_type(lib_format_counts: dict, threshold: float = 0.8) -> tuple[str, float]:
    fwd = sum(float(lib_format_counts.get(k, 0) or 0) for k in FORWARD)
    rev = sum(float(lib_format_counts.get(k, 0) or 0) for k in REVERSE)
    if fwd + rev == 0:
        return "unstranded", float("nan")
    frac_rev = rev / (fwd + rev)
    if frac_rev >= threshold:
        return "stranded-reverse", frac_rev
    if frac_rev <= 1 - threshold:
        return "stranded-forward", frac_rev
    return "unstranded", frac_rev


def evaluate_qc(meta_info: dict, lib_format_counts: dict, thresholds: QCThresholds) -> QCResult:
    processed = int(meta_info.get("num_processed", 0))
    mapped = int(meta_info.get("num_mapped", 0))
    rate = float(meta_info.get("percent_mapped", 100.0 * mapped / processed if processed else 0.0))
    lib_type, frac_rev = infer_library_type(lib_format_counts, thresholds.strand_threshold)
    reasons = []
    if rate < thresholds.min_mapping_rate:
        reasons.append(f"mapping rate {rate:.1f}% < {thresholds.min_mapping_rate}% "
                       "(wrong species/reference, rRNA or adapter contamination?)")
    if processed < thresholds.min_reads_processed:
        reasons.append(f"{processed} reads processed < {thresholds.min_reads_processed}")
    if mapped < thresholds.min_reads_mapped:
        reasons.append(f"{mapped} reads mapped < {thresholds.min_reads_mapped}")
    if thresholds.library_type == "stranded" and not lib_type.startswith("stranded"):
        reasons.append(f"library is {lib_type}; config requires stranded")
    if thresholds.library_type == "unstranded" and lib_type != "unstranded":
        reasons.append(f"library is {lib_type}; config requires unstranded")
    return QCResult(passed=not reasons, reasons=reasons, reads_processed=processed,
                    reads_mapped=mapped, mapping_rate=rate, library_type=lib_type,
                    strand_fraction_reverse=frac_rev,
                    salmon_expected_format=str(lib_format_counts.get("expected_format", "")))


def qc_salmon_dir(salmon_dir: str | Path, thresholds: QCThresholds) -> QCResult:
    salmon_dir = Path(salmon_dir)
    meta = json.loads((salmon_dir / "aux_info" / "meta_info.json").read_text())
    libfmt = json.loads((salmon_dir / "lib_format_counts.json").read_text())
    return evaluate_qc(meta, libfmt, thresholds)
