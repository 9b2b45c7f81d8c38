"""Step 7: fields still unsure after deciding, with candidates, asked of the LLM (one question
per unique field and raw text, batched over all unique sets of a chunk)."""

from __future__ import annotations

from bulkfm.metadata.confidence import CONF
from bulkfm.metadata.llm import LLMChooser, Question
from bulkfm.metadata.ontology import TermIndex
from bulkfm.metadata.records import Pending
from bulkfm.metadata.schema import FieldValue


def questions_for(index: TermIndex, fields: dict[str, FieldValue], pending: list[Pending], llm_threshold: float,
                  review_threshold: float, max_candidates: int) -> dict[str, Question]:
    """field -> the question to ask about it, for the open fields of one unique set."""
    out: dict[str, Question] = {}
    for p in pending:
        fv = fields.get(p.field)
        if fv is not None and fv.confidence > llm_threshold:
            continue
        ids: list[str] = []
        if fv is not None and fv.ontology_id:
            ids.append(fv.ontology_id)
        ids += [h[0] for h in p.embedding_hits]
        ids += [h.id for h in p.scan_hits]
        ids = list(dict.fromkeys(ids))[:max_candidates]
        if not ids:
            continue
        if len(ids) == 1 and fv is not None and fv.ontology_id == ids[0] and fv.confidence >= review_threshold:
            continue  # one candidate, already the answer and above review: a call could only confirm it
        out[p.field] = Question(p.field, p.raw, tuple((t, index.label(t) or "") for t in ids))
    return out


def ask_llm(index: TermIndex, llm: LLMChooser, questions: dict[tuple[int, str], Question],
            results: list[dict[str, FieldValue]], pendings: list[list[Pending]]) -> None:
    """Ask the unique questions; an answer replaces the field of every set that asked it."""
    if not questions:
        return
    answers = llm.choose(list(questions.values()))
    for (i, fld), q in questions.items():
        tid = answers.get(q)
        if not tid:
            continue
        prev = results[i][fld]
        source = prev.source or next(p.source for p in pendings[i] if p.field == fld)
        conf = CONF.llm_agrees if prev.ontology_id == tid else CONF.llm_alone
        results[i][fld] = FieldValue(value=index.label(tid), ontology_id=tid, source=source, method="llm",
                                     confidence=conf)
