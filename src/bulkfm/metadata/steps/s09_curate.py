"""Step 9: a curator's answers (review read-back) replace what was found; fields still below the
review threshold become review items; the queue collects them per (field, raw text)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from collections.abc import Mapping

from bulkfm.metadata.confidence import CONF
from bulkfm.metadata.ontology import TermIndex, norm
from bulkfm.metadata.records import Pending, RawRecord, ReviewItem
from bulkfm.metadata.schema import FieldValue

REVIEW_CANDIDATES = 5  # candidate ids listed for a curator
RAW_CHARS = 300  # raw text shown in the queue
EXAMPLES = 3  # sample ids listed per row


def apply_reviewed(reviewed: Mapping[tuple[str, str], FieldValue], f: dict[str, FieldValue],
                   raws: dict[str, str]) -> None:
    """A curator's answer for (field, raw text) replaces whatever was found for it."""
    for fld, raw in raws.items():
        hit = reviewed.get((fld, norm(raw)))
        if hit is not None:
            f[fld] = FieldValue(hit.value, hit.ontology_id, f[fld].source or hit.source, "reviewed", CONF.reviewed)


def review_items(review_threshold: float, f: dict[str, FieldValue], raws: dict[str, str],
                 pend: list[Pending]) -> list[ReviewItem]:
    """Fields below the review threshold, with the other candidates found for them."""
    items = []
    for fld, raw in raws.items():
        fv = f[fld]
        if fv.method == "reviewed" or fv.confidence >= review_threshold:
            continue
        cand = []
        for p in pend:
            if p.field == fld:
                cand += [h[0] for h in p.embedding_hits] + [h.id for h in p.scan_hits]
        if fv.empty:  # say where the value was and that nothing matched ('cell line: XQ-77b')
            key = next((p.source for p in pend if p.field == fld), None)
            if key:
                fv = FieldValue(None, None, f"{key}: no {fld.replace('_', ' ')} of this name found")
        items.append(ReviewItem(fld, raw, fv, list(dict.fromkeys(cand))[:REVIEW_CANDIDATES]))
    return items


@dataclass
class ReviewRow:
    """One row of review.tsv (review.REVIEW_COLUMNS, in that order)."""

    field: str
    raw_value: str
    source: str
    proposed_value: str
    proposed_id: str
    method: str
    confidence: float
    candidates: str
    n_samples: int = 0
    example_samples: str = ""
    reviewed_id: str = ""
    reviewed_value: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


class ReviewQueue:
    """Review rows keyed by (field, normalised raw text), counting the samples that share them."""

    def __init__(self, index: TermIndex) -> None:
        self.index = index
        self.rows: dict[tuple[str, str], ReviewRow] = {}

    def add(self, rec: RawRecord, items: list[ReviewItem]) -> None:
        for it in items:
            row = self.rows.get((it.field, norm(it.raw)))
            if row is None:
                fv = it.value
                row = self.rows[(it.field, norm(it.raw))] = ReviewRow(
                    it.field, it.raw[:RAW_CHARS], fv.source or "", fv.value or "", fv.ontology_id or "",
                    fv.method or "", fv.confidence, ";".join(f"{c}={self.index.label(c)}" for c in it.candidates))
            row.n_samples += 1
            if row.n_samples <= EXAMPLES:
                row.example_samples = ";".join(filter(None, [row.example_samples, rec.sample_id]))

    def table(self) -> list[dict]:
        """Rows for review.tsv, most samples first."""
        rows = sorted(self.rows.values(), key=lambda r: (-r.n_samples, r.field, r.raw_value))
        return [r.as_dict() for r in rows]
