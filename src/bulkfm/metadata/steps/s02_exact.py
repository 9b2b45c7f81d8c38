"""Step 2: exact evidence. A dedicated key's whole value looked up (or a term found inside it);
another key's whole value naming a cell line; every ontology field scanned for in free text."""

from __future__ import annotations

import re

from bulkfm.metadata.confidence import CONF
from bulkfm.metadata.matcher import Hit
from bulkfm.metadata.ontology import compact, norm
from bulkfm.metadata.records import Candidate, Candidates, KeyedValue, Pending, Pieces
from bulkfm.metadata.rules import not_a_line, parse_sex
from bulkfm.metadata.schema import FIELDS
from bulkfm.metadata.steps import MIXTURE, ONTOLOGY_FIELDS, SCAN_FIELDS, Tools

LOOKUP_HITS = 3  # candidates kept from one whole-value lookup
TEXT_HITS = 2  # candidates kept per field from one free-text piece
LINE_NAME_MAX = 60  # a longer value of another key is a description, not a line's name
LINE_NAME_SHORT = 4  # a shorter name counts only when it is a lexicon entry ('H9' is too common)
NOT_LINE_NAMES = ("control", "normal", "none", "treated", "untreated")
# keys whose values are mostly sample identifiers ('isolate: C-013-5C'): read for what they say of
# the tissue or cells, but a line's name inside them is an ID's letters and digits
ID_KEYS = re.compile(r"\bisolate\b")


def exact_candidates(tools: Tools, pieces: Pieces) -> tuple[Candidates, list[Pending]]:
    """Candidates per field, and the fields still open (their raw text) for embedding and LLM."""
    cands: Candidates = {f: [] for f in FIELDS}
    pending: list[Pending] = []
    for kv in pieces.keyed:
        if kv.field in ONTOLOGY_FIELDS and not (kv.field == "cell_line" and not_a_line(kv.value)):
            dedicated_value(tools, kv, cands, pending)  # 'cell_line: primary tissue' is step 3's
    for kv in pieces.keyed:
        other_key_line(tools, kv, cands)
    text_scan(tools, pieces, cands)
    return cands, pending


def dedicated_value(tools: Tools, kv: KeyedValue, cands: Candidates, pending: list[Pending]) -> None:
    """The value of a key naming an ontology field: the whole value, else a term inside it."""
    fld, value, key, weight = kv.field, kv.value, kv.key, kv.weight
    hits = tools.matcher.lookup(fld, value)
    if fld == "cell_line" and len({h.id for h in hits}) > 1:
        best = tools.lines.established([h.id for h in hits])
        hits = [h for h in hits if h.id == best] or hits
    if hits:
        amb = len({h.id for h in hits}) > 1
        for h in hits[:LOOKUP_HITS]:
            conf = CONF.lexicon(h.kind) * min(1.0, weight + CONF.key_bonus) - (CONF.ambiguous if amb else 0.0)
            cands[fld].append(Candidate(h.id, tools.index.label(h.id), key, "lexicon", conf, value))
        return
    if weight < CONF.strong_key:
        return  # weak keys ('condition', 'status') count only when the value maps exactly
    if fld == "cell_line":
        named = tools.matcher.lines_named(value)
        if len(named) >= 2:  # 'HeLa and HEK293': the mixture, never one of them at random
            cands.setdefault(MIXTURE, []).append(Candidate(
                None, " + ".join(tools.index.label(h.id) or h.id for h in named),
                f"{key} (names {len(named)} lines)", "lexicon", CONF.mixture, value))
            return
    scan = tools.matcher.scan(fld, value, dedicated=True)
    if not scan or fld == "development_stage":
        pending.append(Pending(fld, value, key, weight, scan))
        return
    h = established_hit(tools, scan[0])
    cover = len(h.matched) / max(1, len(norm(value)))
    conf = (CONF.inside_value * weight * (CONF.inside_cover_base + CONF.inside_cover_share * cover)
            - (CONF.ambiguous if h.kind == "ambiguous" else 0))
    src = key
    if h.kind == "variant":  # 'HCT116shP53': the parent line, said so, under review
        conf, src = conf - CONF.variant, f"{key} (variant '{h.matched}' of {tools.index.label(h.id)})"
    cands[fld].append(Candidate(h.id, tools.index.label(h.id), src, "lexicon", conf, value))
    if cover < CONF.inside_cover_min:  # most of the value unexplained: let embedding/LLM weigh in
        pending.append(Pending(fld, value, key, weight, scan))


def other_key_line(tools: Tools, kv: KeyedValue, cands: Candidates) -> None:
    """A whole value of another key that names one cell line ('HeLa' under 'cell type')."""
    value = kv.value
    if kv.field == "cell_line" or len(compact(value)) < 2 or len(value) > LINE_NAME_MAX:
        return
    if parse_sex(value) or norm(value) in NOT_LINE_NAMES:
        return
    hits = [h for h in tools.matcher.lookup("cell_line", value)
            if h.kind == "lexicon" or line_like(h.matched)]
    hits = [h for h in hits if compact(value) not in tools.matcher.common_words]
    if hits and all(h.kind != "lexicon" for h in hits) and names_cell_or_tissue(tools, value, hits[0].matched):
        return  # 'Beta', 'beta cells': a cell type (or tissue) that a line happens to be named after
    if len({h.id for h in hits}) == 1:
        cands["cell_line"].append(Candidate(hits[0].id, tools.index.label(hits[0].id), kv.key, "lexicon",
                                            CONF.other_key_exact, value))


def established_hit(tools: Tools, h: Hit) -> Hit:
    """A line name shared by namesakes ('KG1'), resolved to the widely used one where the
    bundled line tables name exactly one (no longer ambiguous)."""
    if h.kind != "ambiguous":
        return h
    best = tools.lines.established(tools.index.compact_lookup.get(compact(h.matched), []))
    return Hit(best, h.matched, "label", h.count) if best else h


def line_like(name: str) -> bool:
    """A name another key's value may be a line by: a letter in it and not too short. What is
    left of 'Donor 36', 'Sample_133' or 'primary B cell' once the wrapping words are gone ('36',
    '133', 'B') is an identifier of a donor or sample, not a line's name."""
    ck = compact(name)
    return len(ck) >= LINE_NAME_SHORT and any(c.isalpha() for c in ck)


def names_cell_or_tissue(tools: Tools, value: str, name: str) -> bool:
    """The value names a cell type or tissue (a label, synonym or lexicon entry of its own), or
    the line's name is a plain word of the cell-type or tissue vocabulary ('Beta', 'Alpha')."""
    return tools.matcher.cell_or_tissue_word(name) or any(
        h.kind != "typo" for fld in ("cell_type", "tissue") for h in tools.matcher.lookup(fld, value))


def text_scan(tools: Tools, pieces: Pieces, cands: Candidates) -> None:
    """Terms named in free text (source_name, title, other keys), for every scanned field but the
    piece's own (a dedicated value was already looked at as that field)."""
    own = {kv.key: kv.field for kv in pieces.keyed}
    for piece in pieces.texts:
        for fld in SCAN_FIELDS:
            if own.get(piece.source) == fld or fld == "cell_line" and ID_KEYS.search(norm(piece.source)):
                continue
            hits = [established_hit(tools, h) for h in tools.matcher.scan(fld, piece.text)[:TEXT_HITS]]
            for h in hits:
                conf = CONF.text_scan + (CONF.text_named_bonus if h.kind in ("label", "lexicon") else 0.0)
                if h is not hits[0]:
                    # named fewer times than the first (the text is mostly about that), or as
                    # often but by a shorter phrase: the scan's order breaks the tie
                    conf -= CONF.text_second_fewer if h.count < hits[0].count else CONF.text_second_tie
                cands[fld].append(Candidate(h.id, tools.index.label(h.id), piece.source, "lexicon", conf, piece.text))
