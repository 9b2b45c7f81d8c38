"""Step 1: a record's attributes as keyed values (the field each key names) and free-text pieces."""

from __future__ import annotations

import re

from bulkfm.metadata.keys import match_key
from bulkfm.metadata.ontology import norm
from bulkfm.metadata.records import KeyedValue, Pieces, RawRecord, TextPiece
from bulkfm.metadata.rules import is_null
from bulkfm.metadata.steps import ONTOLOGY_FIELDS

# keys whose values describe the sample, so they are free text for the other fields too ('sample
# type: Day 7 Reporter+ H441 Cells' names a line)
DESCRIBING = (*ONTOLOGY_FIELDS, "sample_type")
# bookkeeping keys: their values say nothing about the sample
NOT_DESCRIPTIVE = re.compile(
    r"provider|repository|submitter|protocol|institut|center|centre|consent|accession|barcode|batch|replicate|"
    r"\blane\b|library|\bindex\b|\bfile|contact|\blab\b|antibody|platform|instrument|sequenc|\bid\b|"
    r"\bbiosamplemodel\b|\bstrain\b|\bpassages?\b|ethnicity|\brace\b|\bgap\b"
)


def split_pieces(rec: RawRecord, resources: str | None = None) -> Pieces:
    """Keyed values for non-empty attribute values, and free-text pieces: every describing value
    (also free text for the *other* fields: 'Human Umbilical Vein Cell' under 'cell type' names a
    tissue) and the record's text."""
    keyed, texts = [], []
    for k, v in rec.attributes.items():
        if v is None:
            continue
        v = str(v).strip()
        if not v or is_null(v):
            continue
        m = match_key(k, resources)
        keyed.append(KeyedValue(k, v, m.field, m.weight))
        if (m.field is None or m.field in DESCRIBING) and not NOT_DESCRIPTIVE.search(norm(k)):
            texts.append(TextPiece(k, v))
    if rec.text:
        texts.append(TextPiece("text", rec.text))
    return Pieces(keyed, texts)
