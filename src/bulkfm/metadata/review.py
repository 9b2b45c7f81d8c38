"""The review queue: fields below the confidence threshold, one row per (field, raw text), as a
TSV a curator edits (fill ``reviewed_id`` and/or ``reviewed_value``). The next run reads the
edited file back; every reviewed ID is checked against the ontology index first."""

from __future__ import annotations

import csv
import os
from pathlib import Path

from bulkfm.common.atomic import atomic_path
from bulkfm.metadata.ontology import TermIndex, norm, prefix_of
from bulkfm.metadata.schema import FIELD_ONTOLOGIES, FIELDS, FieldValue

REVIEW_COLUMNS = ("field", "raw_value", "source", "proposed_value", "proposed_id", "method", "confidence",
                  "candidates", "n_samples", "example_samples", "reviewed_id", "reviewed_value")


class ReviewError(ValueError):
    pass


def write_review(rows: list[dict], path: str | os.PathLike[str]) -> None:
    """Write the queue (copy it, fill reviewed_id/reviewed_value, name the copy in metadata.reviewed)."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, REVIEW_COLUMNS, delimiter="\t", lineterminator="\n", extrasaction="ignore")
            w.writeheader()
            for r in rows:
                r = {k: (str(v).replace("\t", " ").replace("\n", " ") if v is not None else "") for k, v in r.items()}
                w.writerow(r)


def read_reviewed(path: str | os.PathLike[str] | None, index: TermIndex) -> dict[tuple[str, str], FieldValue]:
    """(field, normalised raw text) -> the curator's FieldValue (method 'reviewed')."""
    if not path:
        return {}
    path = Path(path)
    if not path.is_file():
        return {}
    out: dict[tuple[str, str], FieldValue] = {}
    with open(path, newline="", encoding="utf-8") as fh:
        for n, row in enumerate(csv.DictReader(fh, delimiter="\t"), 2):
            rid = (row.get("reviewed_id") or "").strip()
            rval = (row.get("reviewed_value") or "").strip()
            if not rid and not rval:
                continue
            fld = (row.get("field") or "").strip()
            raw = row.get("raw_value") or ""
            if fld not in FIELDS:
                raise ReviewError(f"{path}:{n}: unknown field {fld!r}; use one of {', '.join(FIELDS)}")
            if rid:
                term = index.get(rid)
                allowed = FIELD_ONTOLOGIES.get(fld, ())
                if term is None or (allowed and prefix_of(rid) not in allowed):
                    raise ReviewError(f"{path}:{n}: reviewed_id {rid!r} is not a known {'/'.join(allowed) or 'ontology'} "
                                      f"term for field {fld}; fix or clear it")
                rid = index.resolve(rid) or rid
                rval = rval or term.label
            out[(fld, norm(raw))] = FieldValue(rval or None, rid or None, raw, "reviewed", 1.0)
    return out
