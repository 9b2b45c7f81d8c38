"""Step 10, per sample (not per unique set): the SRA technical columns, and what the run's title
or description names for fields the attributes left empty."""

from __future__ import annotations

from bulkfm.metadata.confidence import CONF
from bulkfm.metadata.records import RawRecord
from bulkfm.metadata.rules import is_null, sex_in_text, sra_term
from bulkfm.metadata.schema import FieldValue
from bulkfm.metadata.steps import SCAN_FIELDS, TECHNICAL, Tools

TITLE_KEYS = ("title", "description")
TITLE_CHARS = 2000  # a longer description is cut before scanning
TITLE_CACHE_MAX = 200_000  # titles are often unique per run: the cache is bounded


def technical_fields(rec: RawRecord) -> dict[str, FieldValue]:
    """library_* and instrument from the SRA columns, in the SRA's spelling."""
    out = {}
    for fld in TECHNICAL:
        raw = rec.sra.get(fld) or (rec.sra.get("instrument_model") if fld == "instrument" else None)
        if raw and not is_null(str(raw)):
            t = sra_term(fld, str(raw))
            if t:
                out[fld] = FieldValue(t[0], None, fld, "sra_field", t[1])
    return out


class TitleFill:
    """Fields a run title/description names (cached per text): they only fill what is empty."""

    def __init__(self, tools: Tools) -> None:
        self.tools = tools
        self._cache: dict[tuple[str, str], dict[str, FieldValue]] = {}

    def fill(self, rec: RawRecord, fields: dict[str, FieldValue]) -> None:
        for k in TITLE_KEYS:
            if rec.sra.get(k):
                for fld, fv in self.named(k, str(rec.sra[k])[:TITLE_CHARS]).items():
                    if fields[fld].empty:
                        fields[fld] = fv

    def named(self, key: str, text: str) -> dict[str, FieldValue]:
        cached = self._cache.get((key, text))
        if cached is not None:
            return cached
        out: dict[str, FieldValue] = {}
        for fld in SCAN_FIELDS:
            hits = self.tools.matcher.scan(fld, text)
            if hits:
                h = hits[0]
                out[fld] = FieldValue(self.tools.index.label(h.id), h.id, key, "lexicon",
                                      CONF.text_scan - CONF.title_scan_penalty)
        s = sex_in_text(text)
        if s:
            out["sex"] = FieldValue(s[0], s[1], key, "rule", CONF.title_sex)
        if len(self._cache) > TITLE_CACHE_MAX:
            self._cache.clear()
        self._cache[(key, text)] = out
        return out
