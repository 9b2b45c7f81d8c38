"""The typed records the harmonizer's steps pass on (steps/): one sample's raw metadata, the
pieces it is split into, candidates and open questions per field, and review items."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from bulkfm.metadata.matcher import Hit
from bulkfm.metadata.schema import FieldValue


@dataclass
class RawRecord:
    """One sample's raw metadata: BioSample attributes, free text, SRA columns."""

    sample_id: str
    attributes: dict[str, str] = field(default_factory=dict)
    text: str = ""
    sra: dict[str, str] = field(default_factory=dict)  # library_*, instrument, title, description ...

    def set_key(self) -> str:
        """Hash of the attribute set and free text: not the sample id, not technical fields, and
        not the run title/description, which are often unique per run ('liver rep 7') and only
        fill fields the attributes leave empty (steps.s10_per_sample.TitleFill, cached per title)."""
        blob = json.dumps([sorted(self.attributes.items()), self.text], ensure_ascii=False)
        return hashlib.sha1(blob.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class KeyedValue:
    """An attribute value with the field its key names (None: no field) and how surely."""

    key: str
    value: str
    field: str | None
    weight: float


@dataclass(frozen=True, slots=True)
class TextPiece:
    """Free text to scan for every field: a describing attribute's value or the record's text."""

    source: str  # the raw key, or 'text'
    text: str


@dataclass(frozen=True, slots=True)
class Pieces:
    keyed: list[KeyedValue]
    texts: list[TextPiece]


@dataclass
class Candidate:
    id: str | None
    value: str | None
    source: str  # raw key(s)
    method: str
    confidence: float
    raw: str = ""  # the raw text it came from (for review / LLM)


# field (or MIXTURE) -> the candidates found for it, in the order found
Candidates = dict[str, list[Candidate]]


@dataclass
class Pending:
    """A field still open after exact lookup: embedding and LLM questions about its raw text."""

    field: str
    raw: str
    source: str
    weight: float
    scan_hits: list[Hit] = field(default_factory=list)
    embedding_hits: list[tuple[str, str, float]] = field(default_factory=list)  # (id, string, cosine)


@dataclass(slots=True)
class Scored:
    """One answer while candidates are combined: its confidence so far, best candidate, sources."""

    confidence: float
    best: Candidate
    sources: set[str]


@dataclass
class Decision:
    """A unique set's answer per field and the raw text each answer came from."""

    fields: dict[str, FieldValue]
    raws: dict[str, str]


@dataclass(frozen=True, slots=True)
class ReviewItem:
    """A field a curator should see: its raw text, what was proposed, other candidate ids."""

    field: str
    raw: str
    value: FieldValue
    candidates: list[str]


@dataclass
class SetResult:
    """What one unique attribute set resolves to: fields, and items for the review queue."""

    fields: dict[str, FieldValue]
    review: list[ReviewItem]
