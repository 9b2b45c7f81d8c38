"""NCBI side of resolution: SRA experiment packages through pysradb, GEO series/samples via E-utilities.

SRA: pysradb's ``SRAweb.get_efetch_response`` does the esearch -> efetch (WebEnv) round trip
and parses the EXPERIMENT_PACKAGE_SET XML; we point its base URLs at ``Endpoints.eutils`` and
route its ``requests`` calls through our session (timeouts, retryable 5xx) and map each package
to one row per run.

GEO: ``esearch db=gds term=ACC[GEO Accession]`` -> ``esummary db=gds id=UID`` and read the
``extrelations`` SRA target (SRP for a GSE, SRX for a GSM). This is the same id-based flow as
ffq; pysradb's ``gse_to_srp`` instead needs a WebEnv from esearch (usehistory), which plain
id-based responses lack.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import types
from collections.abc import Iterator
from typing import Any

import requests

from bulkfm.sra.accessions import AccessionError, Kind, classify
from bulkfm.common.deadline import total_deadline
from bulkfm.sra.net import RETRY_STATUS, Endpoints, RetryableStatus, RetryPolicy, get, redact, with_retries

log = logging.getLogger(__name__)

_PATCH_LOCK = threading.Lock()


@contextlib.contextmanager
def _pysradb_transport(sess: requests.Session, policy: RetryPolicy) -> Iterator[None]:
    """Route pysradb.sraweb's module-level ``requests.get/post`` through ``sess`` with a timeout.

    pysradb calls ``requests.get`` without a timeout (a stalled server would hang forever) and
    ignores 5xx; this makes both visible to :func:`with_retries`.
    """
    import pysradb.sraweb as sraweb

    def call(method: str, url: str, **kw: Any) -> requests.Response:
        kw.setdefault("timeout", policy.timeout_s)
        with total_deadline(policy.timeout_s, f"NCBI {redact(url)}"):  # headers + body, not per read
            r = sess.request(method, url, **kw)
            if r.status_code in RETRY_STATUS:
                raise RetryableStatus(f"HTTP {r.status_code} from {redact(r.url)}")
            _ = r.content
        return r

    shim = types.SimpleNamespace(
        get=lambda url, **kw: call("GET", url, **kw),
        post=lambda url, **kw: call("POST", url, **kw),
        exceptions=requests.exceptions,
    )
    with _PATCH_LOCK:
        original = sraweb.requests
        sraweb.requests = shim  # type: ignore[assignment]
        try:
            yield
        finally:
            sraweb.requests = original


def _sraweb(endpoints: Endpoints, sleep_s: float) -> Any:
    from pysradb.sraweb import SRAweb

    # NCBI_API_KEY (environment only, never logged) raises NCBI's limit from 3 to 10 requests/s.
    key = os.environ.get("NCBI_API_KEY") or None
    db = SRAweb(api_key=key)
    if key:
        sleep_s = min(sleep_s, 0.1)
    for name in ("esummary", "esearch", "efetch"):
        db.base_url[name] = f"{endpoints.eutils}/{name}.fcgi"
    db.ena_fastq_search_url = f"{endpoints.ena_portal}/filereport"
    db.sleep_time = sleep_s  # NCBI allows 3 requests/s without an API key
    return db


def efetch_packages(
    accession: str,
    sess: requests.Session,
    endpoints: Endpoints,
    policy: RetryPolicy,
    sleep_s: float = 0.34,
) -> list[dict[str, Any]]:
    """EXPERIMENT_PACKAGE dicts (xmltodict) that NCBI returns for ``accession`` (maybe empty)."""
    db = _sraweb(endpoints, sleep_s)

    def once() -> list[dict[str, Any]]:
        with _pysradb_transport(sess, policy):
            result = db.get_efetch_response("sra", accession)
        if not result:
            return []
        return result if isinstance(result, list) else [result]

    # pysradb raises ValueError for an unparseable (e.g. cut) XML body: retry those too.
    return with_retries(
        once,
        policy,
        f"NCBI SRA lookup for {accession}",
        retry_on=(requests.RequestException, ValueError),
    )


# ---- EXPERIMENT_PACKAGE (xmltodict) -> rows -------------------------------------------------


def _list(x: Any) -> list[Any]:
    if x is None:
        return []
    return x if isinstance(x, list) else [x]


def _text(x: Any) -> str | None:
    if x is None:
        return None
    if isinstance(x, dict):
        x = x.get("#text")
    x = str(x).strip() if x is not None else None
    return x or None


def _external_ids(node: dict[str, Any] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    if not node:
        return out
    for ext in _list((node.get("IDENTIFIERS") or {}).get("EXTERNAL_ID")):
        if isinstance(ext, dict) and ext.get("@namespace") and _text(ext):
            out.setdefault(ext["@namespace"], _text(ext) or "")
    return out


def _int(x: Any) -> int | None:
    try:
        return int(str(x).strip())
    except (TypeError, ValueError):
        return None


def package_rows(pkg: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per RUN in an EXPERIMENT_PACKAGE (bulkfm metadata columns)."""
    exp = pkg.get("EXPERIMENT") or {}
    study = pkg.get("STUDY") or {}
    sample = pkg.get("SAMPLE") or {}
    design = exp.get("DESIGN") or {}
    lib = design.get("LIBRARY_DESCRIPTOR") or {}
    layout = lib.get("LIBRARY_LAYOUT") or {}
    platform = exp.get("PLATFORM") or {}
    platform_name = next(iter(platform), None) if isinstance(platform, dict) else None
    instrument = None
    if platform_name and isinstance(platform[platform_name], dict):
        instrument = _text(platform[platform_name].get("INSTRUMENT_MODEL"))
    sname = sample.get("SAMPLE_NAME") or {}
    sample_ids = _external_ids(sample)
    study_ids = _external_ids(study)
    if "BioProject" not in study_ids:
        study_ids.update(_external_ids(exp.get("STUDY_REF")))
    attrs: dict[str, str] = {}
    for a in _list((sample.get("SAMPLE_ATTRIBUTES") or {}).get("SAMPLE_ATTRIBUTE")):
        if isinstance(a, dict) and _text(a.get("TAG")) is not None:
            attrs[_text(a.get("TAG")) or ""] = _text(a.get("VALUE")) or ""
    geo = sample_ids.get("GEO")
    if not geo and str(exp.get("@alias", "")).startswith("GSM"):
        geo = exp.get("@alias")
    base = {
        "experiment": exp.get("@accession"),
        "sample": sample.get("@accession") or (design.get("SAMPLE_DESCRIPTOR") or {}).get("@accession"),
        "biosample": sample_ids.get("BioSample"),
        "study": study.get("@accession") or (exp.get("STUDY_REF") or {}).get("@accession"),
        "bioproject": study_ids.get("BioProject"),
        "geo_sample": geo,
        "organism": _text(sname.get("SCIENTIFIC_NAME")),
        "taxon_id": _int(_text(sname.get("TAXON_ID"))),
        "library_strategy": _text(lib.get("LIBRARY_STRATEGY")),
        "library_selection": _text(lib.get("LIBRARY_SELECTION")),
        "library_layout": next(iter(layout), None) if isinstance(layout, dict) else None,
        "library_source": _text(lib.get("LIBRARY_SOURCE")),
        "instrument": instrument,
        "platform": platform_name,
        "title": _text(exp.get("TITLE")) or _text(sample.get("TITLE")),
        "sample_title": _text(sample.get("TITLE")),
        "study_title": _text((study.get("DESCRIPTOR") or {}).get("STUDY_TITLE")),
        "attributes": json.dumps(attrs, ensure_ascii=False, sort_keys=True) if attrs else None,
        "source": "ncbi",
    }
    rows = []
    for run in _list((pkg.get("RUN_SET") or {}).get("RUN")):
        if not isinstance(run, dict) or not run.get("@accession"):
            continue
        row = dict(base)
        row["run"] = run["@accession"]
        row["read_count"] = _int(run.get("@total_spots"))
        row["base_count"] = _int(run.get("@total_bases"))
        rows.append(row)
    return rows


def _package_ids(pkg: dict[str, Any], rows: list[dict[str, Any]]) -> set[str]:
    ids = {pkg.get("EXPERIMENT", {}).get("@accession")}
    for r in rows:
        ids.update({r["run"], r["sample"], r["biosample"], r["study"], r["bioproject"], r["geo_sample"]})
    return {i for i in ids if i}


def ncbi_runs(
    accession: str,
    sess: requests.Session,
    endpoints: Endpoints,
    policy: RetryPolicy,
    sleep_s: float = 0.34,
) -> list[dict[str, Any]]:
    """Rows for the runs NCBI SRA links to ``accession`` ([] when NCBI does not know it)."""
    kind = classify(accession)
    rows: list[dict[str, Any]] = []
    for pkg in efetch_packages(accession, sess, endpoints, policy, sleep_s):
        prow = package_rows(pkg)
        # esearch matches free text too: keep only packages that really carry the accession.
        if accession not in _package_ids(pkg, prow):
            continue
        rows.extend(r for r in prow if kind is not Kind.RUN or r["run"] == accession)
    return rows


def _key() -> dict[str, str]:
    key = os.environ.get("NCBI_API_KEY")
    return {"api_key": key} if key else {}


# ---- GEO -------------------------------------------------------------------------------------


def geo_to_sra(accession: str, sess: requests.Session, endpoints: Endpoints, policy: RetryPolicy) -> list[str]:
    """SRA accessions (SRP for GSE, SRX for GSM) that GEO links to ``accession``."""
    kind = classify(accession)
    if kind not in (Kind.GEO_SERIES, Kind.GEO_SAMPLE):
        raise AccessionError(f"{accession} is not a GEO accession")
    what = f"NCBI GEO lookup for {accession}"
    r = get(
        sess,
        f"{endpoints.eutils}/esearch.fcgi",
        policy,
        what,
        params={"db": "gds", "term": f"{accession}[GEO Accession]", "retmode": "json", "retmax": 50, **_key()},
    )
    r.raise_for_status()
    ids = [str(i) for i in r.json().get("esearchresult", {}).get("idlist", [])]
    if not ids:
        return []
    s = get(
        sess,
        f"{endpoints.eutils}/esummary.fcgi",
        policy,
        what,
        params={"db": "gds", "id": ",".join(ids), "retmode": "json", **_key()},
    )
    s.raise_for_status()
    result = s.json().get("result", {})
    targets: list[str] = []
    for uid in result.get("uids", []):
        rec = result.get(str(uid)) or {}
        if rec.get("accession") != accession:
            continue
        for rel in rec.get("extrelations") or []:
            target = str(rel.get("targetobject", "")).strip()
            if rel.get("relationtype") != "SRA":
                continue
            try:
                classify(target)  # untrusted text: only well-formed accessions go on
            except AccessionError:
                log.warning("GEO %s links to malformed SRA id %r; skipped", accession, target[:40])
                continue
            if target not in targets:
                targets.append(target)
    return targets
