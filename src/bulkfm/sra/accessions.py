"""SRA/ENA/DDBJ/GEO/BioSample/BioProject accessions: classify and validate by regex.

Every accession is checked here before it reaches a shell, a URL or a file name: only strings
matching one of these patterns exactly are accepted, so sample sheets and SRA metadata cannot
smuggle shell syntax or paths into a command.
"""

from __future__ import annotations

import re
from enum import Enum


class Kind(str, Enum):
    RUN = "run"  # SRR / ERR / DRR
    EXPERIMENT = "experiment"  # SRX / ERX / DRX
    SAMPLE = "sample"  # SRS / ERS / DRS, SAMN / SAMEA / SAMD
    STUDY = "study"  # SRP / ERP / DRP
    PROJECT = "project"  # PRJNA / PRJEB / PRJDB
    GEO_SERIES = "geo_series"  # GSE
    GEO_SAMPLE = "geo_sample"  # GSM


# re.ASCII: without it \d also matches non-ASCII digits ("SRR６８３５８４４").
_PATTERNS: dict[Kind, re.Pattern[str]] = {
    Kind.RUN: re.compile(r"[SED]RR\d{6,11}", re.ASCII),
    Kind.EXPERIMENT: re.compile(r"[SED]RX\d{6,11}", re.ASCII),
    Kind.SAMPLE: re.compile(r"(?:[SED]RS\d{6,11}|SAM(?:N|EA|D)\d{6,11})", re.ASCII),
    Kind.STUDY: re.compile(r"[SED]RP\d{6,11}", re.ASCII),
    Kind.PROJECT: re.compile(r"PRJ(?:NA|EB|DB)\d{1,9}", re.ASCII),
    Kind.GEO_SERIES: re.compile(r"GSE\d{1,9}", re.ASCII),
    Kind.GEO_SAMPLE: re.compile(r"GSM\d{1,10}", re.ASCII),
}


# Read-only view for vectorised checks (bulkfm.samples): the same patterns, applied per column.
PATTERNS = _PATTERNS


class AccessionError(ValueError):
    """An accession that matches no known pattern."""


def classify(accession: str) -> Kind:
    """Return the kind of ``accession`` or raise :class:`AccessionError` naming the fix."""
    if not isinstance(accession, str):
        raise AccessionError(f"accession must be a string, got {type(accession).__name__}")
    acc = accession.strip()
    for kind, pattern in _PATTERNS.items():
        if pattern.fullmatch(acc):
            return kind
    shown = accession if len(accession) <= 40 else accession[:37] + "..."
    raise AccessionError(
        f"{shown!r} is not a valid SRA/ENA/DDBJ/GEO accession. Expected e.g. SRR1234567 (run), "
        "SRX/ERX (experiment), SRS/SAMN (sample), SRP/PRJNA/PRJEB (study), GSE/GSM (GEO). "
        "Fix the sample sheet row (no spaces, quotes or extra text)."
    )


def is_run(accession: str) -> bool:
    return bool(_PATTERNS[Kind.RUN].fullmatch(accession.strip()))


def validate_run(accession: str) -> str:
    """Return the run accession stripped, or raise if it is not an SRR/ERR/DRR run."""
    kind = classify(accession)
    if kind is not Kind.RUN:
        raise AccessionError(f"{accession!r} is a {kind.value} accession, not a run (SRR/ERR/DRR)")
    return accession.strip()
