"""ENA side of resolution: the portal ``filereport`` table, filled in from the browser XML API.

``filereport?accession=X&result=read_run`` answers for any run/experiment/sample/study/project
accession (SRA and DDBJ ones too) with one TSV row per run, including FASTQ URLs and MD5s.
Fields it does not give (BioSample attributes always; others when a mirror or an old answer has
fewer columns) come from ``/browser/api/xml/ACC[,ACC...]`` RUN/EXPERIMENT/SAMPLE/STUDY records.
When filereport knows nothing, the accession's own XML record seeds the runs (its ENA-RUN links).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from typing import Any

import requests

from bulkfm.sra.accessions import AccessionError, Kind, classify
from bulkfm.sra.net import Endpoints, RetryPolicy, get

log = logging.getLogger(__name__)

FILEREPORT_FIELDS = (
    "run_accession,experiment_accession,sample_accession,secondary_sample_accession,"
    "study_accession,secondary_study_accession,tax_id,scientific_name,library_strategy,"
    "library_selection,library_layout,library_source,instrument_model,instrument_platform,"
    "read_count,base_count,experiment_title,sample_title,study_title,run_alias,experiment_alias,"
    "sample_alias,fastq_ftp,fastq_md5,fastq_bytes,"
    # sample characteristics ENA indexes per run: attributes when no SAMPLE XML is available
    "sample_description,cell_line,cell_type,dev_stage,sex,tissue_type,isolation_source,host_body_site"
)
ATTRIBUTE_FIELDS = (
    "sample_description", "cell_line", "cell_type", "dev_stage", "sex", "tissue_type", "isolation_source", "host_body_site",
)
_GSM = re.compile(r"^(GSM\d{1,10})(?:_|$)")
_RANGE = re.compile(r"^([SED]R[RXSP])(\d+)-\1(\d+)$")
MAX_RANGE = 200_000  # an ENA-RUN link range longer than this is not expanded


def _none(v: Any) -> str | None:
    if v is None:
        return None
    v = str(v).strip()
    return v or None


def _int(v: Any) -> int | None:
    try:
        return int(str(v).strip())
    except (TypeError, ValueError):
        return None


def _geo(*values: Any) -> str | None:
    for v in values:
        m = _GSM.match(str(v or "").strip())
        if m:
            return m.group(1)
    return None


def _route(values: Iterable[Any]) -> dict[str, str]:
    """Put accessions where their pattern says they belong (ENA swaps primary/secondary)."""
    out: dict[str, str] = {}
    for v in values:
        v = _none(v)
        if not v:
            continue
        for part in v.split(";"):
            try:
                kind = classify(part)
            except AccessionError:
                continue
            if kind is Kind.SAMPLE:
                out.setdefault("biosample" if part.startswith("SAM") else "sample", part)
            elif kind is Kind.STUDY:
                out.setdefault("study", part)
            elif kind is Kind.PROJECT:
                out.setdefault("bioproject", part)
    return out


def filereport_row(rec: dict[str, str]) -> dict[str, Any]:
    g = rec.get
    row: dict[str, Any] = {
        "run": _none(g("run_accession")),
        "experiment": _none(g("experiment_accession")),
        "organism": _none(g("scientific_name")),
        "taxon_id": _int(g("tax_id")),
        "library_strategy": _none(g("library_strategy")),
        "library_selection": _none(g("library_selection")),
        "library_layout": _none(g("library_layout")),
        "library_source": _none(g("library_source")),
        "instrument": _none(g("instrument_model")),
        "platform": _none(g("instrument_platform")),
        "read_count": _int(g("read_count")),
        "base_count": _int(g("base_count")),
        "title": _none(g("experiment_title")),
        "sample_title": _none(g("sample_title")),
        "study_title": _none(g("study_title")),
        "geo_sample": _geo(g("experiment_alias"), g("sample_alias"), g("run_alias")),
        "fastq_ftp": _none(g("fastq_ftp")),
        "fastq_md5": _none(g("fastq_md5")),
        "fastq_bytes": _none(g("fastq_bytes")),
        "source": "ena",
    }
    attrs = {k: v for k in ATTRIBUTE_FIELDS if (v := _none(g(k)))}
    # a fallback only: the SAMPLE XML's full attribute list wins (see ena_runs)
    row["ena_attributes"] = json.dumps(attrs, ensure_ascii=False, sort_keys=True) if attrs else None
    row.update(
        _route(
            [g("secondary_sample_accession"), g("sample_accession"), g("secondary_study_accession"), g("study_accession")]
        )
    )
    return row


def filereport(accession: str, sess: requests.Session, endpoints: Endpoints, policy: RetryPolicy) -> list[dict[str, Any]]:
    """ENA filereport rows for ``accession`` ([] when ENA does not know it)."""
    r = get(
        sess,
        f"{endpoints.ena_portal}/filereport",
        policy,
        f"ENA filereport for {accession}",
        params={"accession": accession, "result": "read_run", "fields": FILEREPORT_FIELDS, "format": "tsv"},
    )
    if r.status_code in (204, 400, 404) or not r.text.strip():
        # ENA answers 204/400 (with a JSON message) for accessions it does not have; a 400 also
        # means a rejected field list, so its message is shown.
        (log.warning if r.status_code == 400 else log.debug)(
            "ENA filereport for %s: HTTP %s %s", accession, r.status_code, r.text[:200])
        return []
    r.raise_for_status()
    rows = []
    for rec in csv.DictReader(io.StringIO(r.text), delimiter="\t"):
        row = filereport_row(rec)
        if row["run"]:
            classify(row["run"])  # untrusted: must be a well-formed accession
            rows.append(row)
    return rows


# ---- browser XML -----------------------------------------------------------------------------


def _links(elem: ET.Element) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for x in elem.iter("XREF_LINK"):
        db, ident = x.findtext("DB"), x.findtext("ID")
        if db and ident:
            out.setdefault(db.strip(), []).append(ident.strip())
    return out


def _attributes(elem: ET.Element, tag: str) -> dict[str, str]:
    out = {}
    for a in elem.iter(tag):
        k = (a.findtext("TAG") or "").strip()
        if k:
            out[k] = (a.findtext("VALUE") or "").strip()
    return out


def _ext_ids(elem: ET.Element | None) -> dict[str, str]:
    out: dict[str, str] = {}
    if elem is None:
        return out
    for tag in ("EXTERNAL_ID", "SUBMITTER_ID", "SECONDARY_ID"):
        for e in elem.iter(tag):
            ns = e.get("namespace") or tag
            if e.text and e.text.strip():
                out.setdefault(ns, e.text.strip())
    return out


def expand_ids(values: Iterable[str]) -> list[str]:
    """``SRR1-SRR3,SRR7`` style ENA link ids -> accession list."""
    out: list[str] = []
    for value in values:
        for part in value.split(","):
            part = part.strip()
            m = _RANGE.match(part)
            if m:
                prefix, a, b = m.group(1), m.group(2), m.group(3)
                n = int(b) - int(a) + 1
                if 0 < n <= MAX_RANGE:
                    out.extend(f"{prefix}{i:0{len(a)}d}" for i in range(int(a), int(b) + 1))
                    continue
                log.warning("ENA link range %s too large; skipped", part)
            elif part:
                out.append(part)
    return out


def _first_run_links(links: dict[str, list[str]]) -> list[str]:
    return [r for r in expand_ids(links.get("ENA-RUN", [])) if _is(r, Kind.RUN)]


def _is(acc: str, kind: Kind) -> bool:
    try:
        return classify(acc) is kind
    except AccessionError:
        return False


def parse_xml_records(text: str) -> dict[str, dict[str, Any]]:
    """accession -> fields for each RUN/EXPERIMENT/SAMPLE/STUDY record in an ENA XML answer."""
    root = ET.fromstring(text.encode() if isinstance(text, str) else text)
    out: dict[str, dict[str, Any]] = {}
    for el in root.iter():
        acc = el.get("accession")
        if el.tag not in _RECORD_FIELDS or not acc:
            continue
        links = _links(el)
        ids = _ext_ids(el.find("IDENTIFIERS"))
        rec: dict[str, Any] = {"kind": el.tag, "title": _none(el.findtext("TITLE"))}
        rec.update(_RECORD_FIELDS[el.tag](el, links, ids))
        out[acc] = rec
        if rec.get("biosample"):  # a SAMPLE asked for by its BioSample id
            out.setdefault(rec["biosample"], rec)
    return out


def _run_fields(el: ET.Element, links: dict, ids: dict) -> dict[str, Any]:
    attrs = _attributes(el, "RUN_ATTRIBUTE")
    ref = el.find("EXPERIMENT_REF")
    return dict(
        experiment=ref.get("accession") if ref is not None else None,
        study=(links.get("ENA-STUDY") or [None])[0],
        sample=(links.get("ENA-SAMPLE") or [None])[0],
        read_count=_int(attrs.get("ENA-SPOT-COUNT")),
        base_count=_int(attrs.get("ENA-BASE-COUNT")),
        geo_sample=_geo(ids.get("GEO"), el.get("alias"), ref.get("refname") if ref is not None else None),
    )


def _experiment_fields(el: ET.Element, links: dict, ids: dict) -> dict[str, Any]:
    lib = el.find("DESIGN/LIBRARY_DESCRIPTOR")
    layout = lib.find("LIBRARY_LAYOUT") if lib is not None else None
    plat = el.find("PLATFORM")
    plat_el = plat[0] if plat is not None and len(plat) else None
    sref = el.find("STUDY_REF")
    sdesc = el.find("DESIGN/SAMPLE_DESCRIPTOR")
    attrs = _attributes(el, "EXPERIMENT_ATTRIBUTE")
    return dict(
        study=sref.get("accession") if sref is not None else None,
        bioproject=_ext_ids(sref).get("BioProject"),
        sample=sdesc.get("accession") if sdesc is not None else None,
        geo_sample=_geo(_ext_ids(sdesc).get("GEO"), el.get("alias"), attrs.get("GEO Accession")),
        library_strategy=_none(lib.findtext("LIBRARY_STRATEGY")) if lib is not None else None,
        library_selection=_none(lib.findtext("LIBRARY_SELECTION")) if lib is not None else None,
        library_source=_none(lib.findtext("LIBRARY_SOURCE")) if lib is not None else None,
        library_layout=layout[0].tag if layout is not None and len(layout) else None,
        platform=plat_el.tag if plat_el is not None else None,
        instrument=_none(plat_el.findtext("INSTRUMENT_MODEL")) if plat_el is not None else None,
        runs=_first_run_links(links),
        read_count=_int(attrs.get("ENA-SPOT-COUNT")),
        base_count=_int(attrs.get("ENA-BASE-COUNT")),
    )


def _sample_fields(el: ET.Element, links: dict, ids: dict) -> dict[str, Any]:
    attrs = {k: v for k, v in _attributes(el, "SAMPLE_ATTRIBUTE").items() if not k.startswith("ENA-")}
    return dict(
        biosample=ids.get("BioSample"),
        geo_sample=_geo(ids.get("GEO"), el.get("alias")),
        taxon_id=_int(el.findtext("SAMPLE_NAME/TAXON_ID")),
        organism=_none(el.findtext("SAMPLE_NAME/SCIENTIFIC_NAME")),
        attributes=json.dumps(attrs, ensure_ascii=False, sort_keys=True) if attrs else None,
        study=(links.get("ENA-STUDY") or [None])[0],
        runs=_first_run_links(links),
    )


def _study_fields(el: ET.Element, links: dict, ids: dict) -> dict[str, Any]:
    bioproject = ids.get("BioProject")
    if not bioproject:
        bioproject = next((v for v in ids.values() if _is(v, Kind.PROJECT)), None)
    return dict(
        bioproject=bioproject,
        study_title=_none(el.findtext("DESCRIPTOR/STUDY_TITLE")),
        runs=_first_run_links(links),
    )


# The fields each record kind contributes, besides its kind and title.
_RECORD_FIELDS = {"RUN": _run_fields, "EXPERIMENT": _experiment_fields, "SAMPLE": _sample_fields,
                  "STUDY": _study_fields}


def browser_xml(
    accessions: list[str], sess: requests.Session, endpoints: Endpoints, policy: RetryPolicy, batch: int = 100
) -> dict[str, dict[str, Any]]:
    """Records for ``accessions`` from the ENA browser XML API (missing ones are simply absent)."""
    out: dict[str, dict[str, Any]] = {}
    todo = [a for a in dict.fromkeys(accessions) if a]
    for a in todo:
        classify(a)  # only well-formed accessions go into a URL path
    for i in range(0, len(todo), max(1, batch)):
        chunk = todo[i : i + batch]
        r = get(sess, f"{endpoints.ena_browser}/xml/{','.join(chunk)}", policy, f"ENA XML for {chunk[0]}" + (f" (+{len(chunk) - 1})" if len(chunk) > 1 else ""))
        if r.status_code in (204, 400, 404) or not r.text.strip():
            continue
        r.raise_for_status()
        try:
            out.update(parse_xml_records(r.text))
        except ET.ParseError as exc:
            log.warning("ENA XML for %s unreadable (%s); fields left empty", chunk[0], exc)
    return out


_FILL = {
    "RUN": ("experiment", "study", "sample", "read_count", "base_count", "geo_sample", "title"),
    "EXPERIMENT": (
        "study", "bioproject", "sample", "geo_sample", "library_strategy", "library_selection",
        "library_source", "library_layout", "platform", "instrument", "title",
    ),
    "SAMPLE": ("biosample", "geo_sample", "taxon_id", "organism", "attributes", "study", "sample_title"),
    "STUDY": ("bioproject", "study_title"),
}


def _fill(row: dict[str, Any], rec: dict[str, Any] | None) -> None:
    if not rec:
        return
    for key in _FILL[rec["kind"]]:
        src = "title" if key == "sample_title" else key
        if row.get(key) is None and rec.get(src) is not None:
            row[key] = rec[src]


def enrich(rows: list[dict[str, Any]], sess: requests.Session, endpoints: Endpoints, policy: RetryPolicy, batch: int = 100) -> None:
    """Fill missing fields in place from RUN, then EXPERIMENT, SAMPLE and STUDY XML records."""
    steps = (
        ("run", ("experiment", "study", "sample", "read_count")),
        ("experiment", ("library_strategy", "library_source", "library_layout", "instrument")),
        ("sample", ("taxon_id", "attributes", "biosample")),
        ("study", ("bioproject",)),
    )
    for key, needed in steps:
        want = [r[key] for r in rows if r.get(key) and any(r.get(n) is None for n in needed)]
        if key == "sample":  # a row may only know the BioSample id
            want += [r["biosample"] for r in rows if not r.get("sample") and r.get("biosample") and r.get("attributes") is None]
        if not want:
            continue
        recs = browser_xml(want, sess, endpoints, policy, batch)
        for r in rows:
            _fill(r, recs.get(r.get(key) or "") or (recs.get(r.get("biosample") or "") if key == "sample" else None))


def ena_runs(
    accession: str,
    sess: requests.Session,
    endpoints: Endpoints,
    policy: RetryPolicy,
    xml_enrich: bool = True,
    batch: int = 100,
) -> list[dict[str, Any]]:
    """Rows for the runs ENA links to ``accession`` ([] when ENA knows nothing)."""
    rows = filereport(accession, sess, endpoints, policy)
    if not rows:
        rec = browser_xml([accession], sess, endpoints, policy).get(accession)
        if rec:
            runs = [accession] if rec["kind"] == "RUN" else rec.get("runs", [])
            for run in runs:
                row: dict[str, Any] = {"run": run, "source": "ena"}
                if rec["kind"] == "EXPERIMENT":
                    row["experiment"] = accession
                elif rec["kind"] == "SAMPLE":
                    row["sample" if accession[1:3] == "RS" else "biosample"] = accession
                elif rec["kind"] == "STUDY":
                    row["study"] = accession
                _fill(row, rec)
                rows.append(row)
    if rows and xml_enrich:
        enrich(rows, sess, endpoints, policy, batch)
    for r in rows:
        fallback = r.pop("ena_attributes", None)
        if r.get("attributes") is None:
            r["attributes"] = fallback
    return rows
