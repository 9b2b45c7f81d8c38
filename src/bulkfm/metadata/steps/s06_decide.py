"""Step 6: one answer per field from its candidates. Candidates naming the same answer add up
(independent keys or methods), a term below another supports it, a close rival costs."""

from __future__ import annotations

from bulkfm.metadata.confidence import CONF
from bulkfm.metadata.lines import CellLineRecords
from bulkfm.metadata.ontology import TermIndex
from bulkfm.metadata.records import Candidate, Candidates, Decision, Scored
from bulkfm.metadata.schema import FIELD_ONTOLOGIES, FIELDS, FieldValue
from bulkfm.metadata.steps import MIXTURE, SOURCE_CHARS


def decide(index: TermIndex, cands: Candidates, lines: CellLineRecords | None = None) -> Decision:
    """Every field's answer (empty where no candidate has a confidence), then the derived-line
    and mixture rules."""
    out: dict[str, FieldValue] = {}
    raws: dict[str, str] = {}
    for fld in FIELDS:
        cs = [c for c in cands.get(fld, []) if c.confidence > 0]
        if not cs:
            out[fld] = FieldValue()
            continue
        out[fld], raws[fld] = combine(index, fld, cs)
    decision = Decision(out, raws)
    if lines is not None:
        derived_line(lines, cands, decision)
    mixture(cands, decision)
    return decision


def derived_line(lines: CellLineRecords, cands: Candidates, decision: Decision) -> None:
    """A line named one place and a subline or clone of it named another ('cell line: PC3',
    'source_name: PC3-Epi'): the subline is the more precise answer, with the parent's support.
    Only where a whole value names the subline: 'HeLa_Gfp_expression_control' is HeLa given GFP
    in the study, not the Cellosaurus line 'HeLa/GFP'."""
    top = decision.fields["cell_line"]
    if not top.ontology_id:
        return
    subs = [c for c in cands.get("cell_line", []) if c.id and c.id != top.ontology_id
            and c.confidence >= CONF.below_min and lines.parent(c.id) == top.ontology_id
            and any(h.id == c.id for h in lines.matcher.lookup("cell_line", c.raw))]
    if subs:
        c = max(subs, key=lambda c: c.confidence)
        decision.fields["cell_line"] = FieldValue(c.value, c.id, f"{c.source};{top.source}"[:SOURCE_CHARS], c.method,
                                                  max(c.confidence, top.confidence))
        decision.raws["cell_line"] = c.raw


def mixture(cands: Candidates, decision: Decision) -> None:
    """A dedicated value naming several lines outranks any one line named elsewhere."""
    mix = cands.get(MIXTURE)
    if mix:
        m = mix[0]
        decision.fields["cell_line"] = FieldValue(m.value, None, m.source[:SOURCE_CHARS], m.method, m.confidence)
        decision.raws["cell_line"] = m.raw


def combine(index: TermIndex, fld: str, cs: list[Candidate]) -> tuple[FieldValue, str]:
    """Best candidate, with confidence raised by agreeing evidence and lowered by rivals; and the
    raw text it came from."""
    scored = agreeing(fld, cs)
    ontology = fld in FIELD_ONTOLOGIES
    if ontology:
        general_supports_specific(index, scored)
    scored.sort(key=lambda s: (-s.confidence, -(index.depth(s.best.id) if s.best.id else 0)))
    if ontology and scored[0].best.id:
        prefer_below(index, scored)
    top = scored[0]
    conf = top.confidence
    if len(scored) > 1 and not (ontology and related(index, top.best.id, scored[1].best.id)):
        if scored[1].confidence > conf - CONF.rival_margin:
            conf -= CONF.rival_penalty  # two different answers about equally supported
    best = top.best
    fv = FieldValue(value=best.value, ontology_id=best.id, source=";".join(sorted(top.sources))[:SOURCE_CHARS],
                    method=best.method, confidence=round(max(0.0, min(CONF.ceiling, conf)), 3))
    return fv, best.raw


def agreeing(fld: str, cs: list[Candidate]) -> list[Scored]:
    """Candidates grouped by answer (term id, or value): the best of each, gaining from the others
    that come from another key or method."""
    key = (lambda c: c.id) if fld in FIELD_ONTOLOGIES else (lambda c: c.value)
    groups: dict[str | None, list[Candidate]] = {}
    for c in cs:
        groups.setdefault(key(c), []).append(c)
    scored = []
    for grp in groups.values():
        grp.sort(key=lambda c: -c.confidence)
        best = grp[0]
        conf = best.confidence
        for other in grp[1:]:
            if other.source != best.source or other.method != best.method:
                conf = 1 - (1 - conf) * (1 - other.confidence * CONF.agreement_share)
        scored.append(Scored(conf, best, {c.source for c in grp}))
    return scored


def general_supports_specific(index: TermIndex, scored: list[Scored]) -> None:
    """A more specific term agreeing with a general one (lung / upper lobe of lung) gains."""
    for s in scored:
        for t in scored:
            if s is not t and s.best.id and t.best.id and index.is_a(s.best.id, t.best.id):
                s.confidence = 1 - (1 - s.confidence) * (1 - t.confidence * CONF.below_support)


def prefer_below(index: TermIndex, scored: list[Scored]) -> None:
    """A well-supported term below the winner says the same, more precisely ('kidney' + 'renal
    cortex'): it goes first, with the winner's support."""
    top = scored[0]
    below = [s for s in scored[1:]
             if s.best.id and s.confidence >= CONF.below_min and index.is_a(s.best.id, top.best.id)]
    if below:
        pick = max(below, key=lambda s: (index.depth(s.best.id), s.confidence))
        scored.remove(pick)
        scored.insert(0, Scored(max(pick.confidence, top.confidence), pick.best, pick.sources | top.sources))


def related(index: TermIndex, a: str | None, b: str | None) -> bool:
    """One term is at or below the other."""
    return bool(a and b and (index.is_a(a, b) or index.is_a(b, a)))
