"""Accessions of any kind -> one metadata row per sequencing run.

Order of sources per accession: NCBI SRA (pysradb) first, ENA (filereport + browser XML) as
fallback when NCBI fails or does not know the accession. GEO GSE/GSM go through NCBI GEO to
their SRP/SRX first. Runs that are not human bulk RNA-seq stay in the table with
``excluded_reason`` set (see :mod:`bulkfm.sra.filters`); downstream keeps
``excluded_reason.isna()``.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import requests
from tqdm.auto import tqdm

from bulkfm.common.atomic import atomic_path, write_text_atomic
from bulkfm.sra import ena, ncbi
from bulkfm.sra.accessions import AccessionError, Kind, classify
from bulkfm.sra.filters import RunFilter, apply_filter
from bulkfm.sra.net import Endpoints, NetworkError, RetryPolicy, session

log = logging.getLogger(__name__)

# Column order of sra/metadata.parquet.
COLUMNS: tuple[str, ...] = (
    "run", "experiment", "sample", "biosample", "study", "bioproject", "geo_sample",
    "organism", "taxon_id", "library_strategy", "library_selection", "library_layout",
    "library_source", "instrument", "platform", "read_count", "base_count", "title",
    "sample_title", "study_title", "attributes", "fastq_ftp", "fastq_md5", "fastq_bytes",
    "input_accession", "source", "excluded_reason",
)
INT_COLUMNS = ("taxon_id", "read_count", "base_count")
SOURCES = ("ncbi", "ena")


class ResolveError(ValueError):
    """Accessions that no source knows."""


def normalize(accessions: Iterable[str]) -> list[str]:
    """Strip, upper-case, validate and de-duplicate (order kept); all bad ones in one error.

    Upper-casing is safe: the result must still match a strict accession pattern, so
    ``srr1234567`` becomes ``SRR1234567`` while ``SRR123; rm -rf /`` is rejected.
    """
    out: list[str] = []
    bad: list[str] = []
    for acc in accessions:
        a = str(acc).strip().upper()
        try:
            classify(a)
        except AccessionError:
            bad.append(str(acc))
            continue
        if a not in out:
            out.append(a)
    if bad:
        shown = ", ".join(repr(b[:40]) for b in bad[:10]) + (f" and {len(bad) - 10} more" if len(bad) > 10 else "")
        raise AccessionError(
            f"not valid SRA/ENA/DDBJ/GEO accessions: {shown}. Expected e.g. SRR1234567 (run), "
            "SRX/ERX (experiment), SRS/SAMN (sample), SRP/PRJNA/PRJEB (study), GSE/GSM (GEO). "
            "Fix those sample sheet rows (one accession per row, no spaces or extra text)."
        )
    return out


def _sra_rows(
    acc: str,
    sess: requests.Session,
    endpoints: Endpoints,
    policy: RetryPolicy,
    sources: Sequence[str],
    ncbi_sleep_s: float,
    ena_xml: bool,
    xml_batch: int,
) -> list[dict[str, Any]]:
    errors: list[str] = []
    for src in sources:
        try:
            if src == "ncbi":
                rows = ncbi.ncbi_runs(acc, sess, endpoints, policy, ncbi_sleep_s)
            elif src == "ena":
                rows = ena.ena_runs(acc, sess, endpoints, policy, xml_enrich=ena_xml, batch=xml_batch)
            else:
                raise ValueError(f"unknown sra source {src!r}; use {SOURCES}")
        except NetworkError as exc:
            errors.append(str(exc))
            log.warning("%s: %s failed; trying the next source", acc, src)
            continue
        if rows:
            return rows
        log.info("%s: not found in %s", acc, src)
    if errors:  # a source that failed might have known the accession: not "not found"
        raise NetworkError(f"could not resolve {acc}:\n  " + "\n  ".join(errors))
    return []


def _add_fastq_urls(rows: list[dict[str, Any]], acc: str, sess: requests.Session, endpoints: Endpoints, policy: RetryPolicy) -> None:
    """NCBI rows lack ENA FASTQ URLs/MD5s: one filereport per accession adds them (best effort)."""
    if not rows or all(r.get("fastq_ftp") for r in rows):
        return
    try:
        report = {r["run"]: r for r in ena.filereport(acc, sess, endpoints, policy)}
    except NetworkError as exc:
        log.warning("ENA FASTQ URLs for %s unavailable (%s); the download step looks them up again", acc, exc)
        return
    for r in rows:
        e = report.get(r["run"])
        if e:
            for k in ("fastq_ftp", "fastq_md5", "fastq_bytes"):
                r[k] = r.get(k) or e.get(k)


def resolve(
    accessions: list[str],
    *,
    endpoints: Endpoints | None = None,
    human_rnaseq_only: bool = True,
    run_filter: RunFilter | None = None,
    retry: RetryPolicy | None = None,
    sources: Sequence[str] = SOURCES,
    ncbi_sleep_s: float = 0.34,
    ena_xml: bool = True,
    ena_fastq_urls: bool = True,
    xml_batch: int = 100,
    sess: requests.Session | None = None,
    progress: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
) -> pd.DataFrame:
    """Resolve ``accessions`` (any mix of kinds) to one row per run; see :data:`COLUMNS`.

    Raises :class:`AccessionError` for malformed input, :class:`ResolveError` for accessions no
    source knows, :class:`bulkfm.sra.net.NetworkError` when the services stay unreachable.
    ``cache_dir`` keeps each accession's unfiltered rows as JSON, so a rerun after a failure
    (or with another filter) asks the services only about accessions not yet resolved.
    """
    endpoints = endpoints or Endpoints()
    policy = retry or RetryPolicy()
    sess = sess or session()
    accs = normalize(accessions)
    by_run: dict[str, dict[str, Any]] = {}
    missing: list[str] = []
    kw = dict(sess=sess, endpoints=endpoints, policy=policy, sources=sources, ncbi_sleep_s=ncbi_sleep_s, ena_xml=ena_xml, xml_batch=xml_batch)
    cache = Path(cache_dir) if cache_dir else None
    for acc in tqdm(accs, desc="resolve", unit="acc", disable=not progress or len(accs) < 2):
        cached = _cache_get(cache, acc)
        rows = cached if cached is not None else _fetch_rows(acc, kw, ena_fastq_urls)
        if isinstance(rows, str):  # why the accession has no rows
            missing.append(rows)
            continue
        if not rows:
            missing.append(acc)
            continue
        if cached is None:
            _cache_put(cache, acc, rows)
        for r in rows:
            r["input_accession"] = acc
            by_run.setdefault(r["run"], r)  # the first accession that names a run owns it
    if missing:
        raise ResolveError(
            f"{len(missing)} accession(s) not found in NCBI SRA or ENA: {', '.join(missing[:20])}. "
            "Check for typos, whether the data are public yet (SRA/GEO embargo), or remove them "
            "from the sample sheet."
        )
    df = to_frame(by_run.values())
    flt = (run_filter or RunFilter()) if human_rnaseq_only else None
    df = apply_filter(df, flt)
    _log_summary(df)
    return df


def _fetch_rows(acc: str, kw: dict[str, Any], ena_fastq_urls: bool) -> list[dict[str, Any]] | str:
    """The runs of one accession from the services (GEO via its SRA links), or the reason GEO
    gives none."""
    sess, endpoints, policy = kw["sess"], kw["endpoints"], kw["policy"]
    kind = classify(acc)
    targets = [acc]
    if kind in (Kind.GEO_SERIES, Kind.GEO_SAMPLE):
        targets = ncbi.geo_to_sra(acc, sess, endpoints, policy)
        if not targets:
            return f"{acc} (GEO has no SRA link: microarray or not yet public?)"
    rows: list[dict[str, Any]] = []
    for t in targets:
        trows = _sra_rows(t, **kw)
        if ena_fastq_urls:
            _add_fastq_urls(trows, t, sess, endpoints, policy)
        rows += trows
    if kind is Kind.GEO_SAMPLE:
        for r in rows:
            r["geo_sample"] = r.get("geo_sample") or acc
    return rows


_CACHE_VERSION = 1


def _cache_get(cache: Path | None, acc: str) -> list[dict[str, Any]] | None:
    path = cache / f"{acc}.json" if cache else None
    if path is None or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        if data.get("version") == _CACHE_VERSION:
            return [dict(r) for r in data["rows"]]
    except (ValueError, KeyError, TypeError):
        log.warning("ignoring unreadable resolve cache %s", path)
    return None


def _cache_put(cache: Path | None, acc: str, rows: list[dict[str, Any]]) -> None:
    if cache is not None:
        write_text_atomic(cache / f"{acc}.json", json.dumps({"version": _CACHE_VERSION, "rows": rows}))


def to_frame(rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    df = pd.DataFrame(list(rows), columns=list(COLUMNS))
    for c in COLUMNS:
        if c in INT_COLUMNS:
            df[c] = pd.array(pd.to_numeric(df[c], errors="coerce"), dtype="Int64")
        else:
            df[c] = df[c].astype("string")
    if df["run"].notna().all():
        df = df.sort_values("run", kind="stable").reset_index(drop=True)
    return df


def _log_summary(df: pd.DataFrame) -> None:
    excl = df["excluded_reason"].dropna()
    log.info("resolved %d runs: %d kept, %d excluded", len(df), len(df) - len(excl), len(excl))
    for reason, n in Counter(excl).most_common(5):
        log.info("  excluded %d: %s", n, reason)


def write_metadata(df: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write the run table atomically (Parquet)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)
    return path


def read_metadata(path: str | os.PathLike[str]) -> pd.DataFrame:
    return pd.read_parquet(path)
