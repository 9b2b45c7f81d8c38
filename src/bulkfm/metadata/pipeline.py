"""The harmonizer: raw attribute sets -> one FieldValue per schema field, cheapest method first.

Work is done per *unique attribute set* (identical attributes/text across thousands of runs are
resolved once), and the expensive steps per unique raw value: embedding queries are batched over
the distinct values still unresolved, LLM questions are unique (field, raw text) pairs.

The work is a pipeline of named steps (``steps/``, numbered in the order they run; this module
only runs them). Confidence comes from the method and from agreement: a term found by two
independent keys (or a key and the free text) gains, a competing term close in confidence costs
(every value in ``confidence.CONF``, with its reason). Below ``review_threshold`` a field is
listed for a curator (review.py); at most ``llm_threshold`` and with candidates it is asked of
the LLM when one is configured.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from bulkfm.common.settings import check_keys

from bulkfm.metadata.embedding import Embedder
from bulkfm.metadata.llm import LLMChooser, LLMConfig, Question
from bulkfm.metadata.ontology import TermIndex
from bulkfm.metadata.records import Candidates, Pending, RawRecord, SetResult
from bulkfm.metadata.schema import FieldValue
from bulkfm.metadata.steps import TECHNICAL, Tools
from bulkfm.metadata.steps.s01_pieces import split_pieces
from bulkfm.metadata.steps.s02_exact import exact_candidates
from bulkfm.metadata.steps.s03_parse import parsed_values
from bulkfm.metadata.steps.s04_embed import embed_pending
from bulkfm.metadata.steps.s05_support import cell_supports_tissue, tissue_parts
from bulkfm.metadata.steps.s06_decide import decide
from bulkfm.metadata.steps.s07_llm import ask_llm, questions_for
from bulkfm.metadata.steps.s08_derive import derive
from bulkfm.metadata.steps.s09_curate import ReviewQueue, apply_reviewed, review_items
from bulkfm.metadata.steps.s10_per_sample import TitleFill, technical_fields

__all__ = ["Harmonizer", "RawRecord", "Settings", "TECHNICAL"]

log = logging.getLogger(__name__)

CHUNK = 20_000  # records resolved together: memory is bounded by this and the unique sets


@dataclass(frozen=True)
class Settings:
    review_threshold: float = 0.6
    llm_threshold: float = 0.7
    embedding: bool = True
    embedding_min: float = 0.6  # cosine below: not even a candidate
    candidates: int = 8
    embedding_ontologies: tuple[str, ...] = ("UBERON", "CL", "MONDO", "HsapDv")

    @classmethod
    def from_dict(cls, d: Mapping | None) -> "Settings":
        d = dict(d or {})
        check_keys(d, cls.__dataclass_fields__, "metadata")
        if "embedding_ontologies" in d:
            d["embedding_ontologies"] = tuple(d["embedding_ontologies"])
        return cls(**d)


class Harmonizer:
    def __init__(self, index: TermIndex, settings: Settings | None = None, llm: LLMConfig | None = None,
                 embedder: Embedder | None = None, reviewed: Mapping[tuple[str, str], FieldValue] | None = None,
                 resources: str | None = None) -> None:
        self.index = index
        self.settings = settings or Settings()
        self.tools = Tools.build(index, resources)
        self.matcher, self.lines = self.tools.matcher, self.tools.lines
        self.embedder = embedder
        self.llm = LLMChooser(llm or LLMConfig(), index, resources)
        self.reviewed = dict(reviewed or {})
        self.queue = ReviewQueue(index)
        self.titles = TitleFill(self.tools)
        self.stats = {"samples": 0, "unique_sets": 0, "embedding_queries": 0, "llm_questions": 0}

    @property
    def review(self) -> dict:
        """(field, normalised raw text) -> review row, for the queue so far."""
        return self.queue.rows

    def review_table(self) -> list[dict]:
        """Rows for review.tsv, most samples first."""
        return self.queue.table()

    def harmonize(self, records: Iterable[RawRecord]) -> Iterator[tuple[RawRecord, dict[str, FieldValue]]]:
        """Yield (record, fields) for every record, in order; work is shared by unique sets.

        Records are consumed in chunks so memory stays bounded by the chunk and the number of
        unique attribute sets, never by the number of samples.
        """
        cache: dict[str, SetResult] = {}
        chunk: list[RawRecord] = []
        for rec in records:
            chunk.append(rec)
            if len(chunk) >= CHUNK:
                yield from self._chunk(chunk, cache)
                chunk = []
        if chunk:
            yield from self._chunk(chunk, cache)

    def _chunk(self, chunk: list[RawRecord], cache: dict[str, SetResult]):
        todo: dict[str, RawRecord] = {}
        for rec in chunk:
            k = rec.set_key()
            if k not in cache and k not in todo:
                todo[k] = rec
        if todo:
            for k, result in zip(todo, self.resolve_sets(list(todo.values()))):
                cache[k] = result
        for rec in chunk:  # step 10, per sample
            self.stats["samples"] += 1
            result = cache[rec.set_key()]
            fields = dict(result.fields)
            fields.update(technical_fields(rec))
            self.titles.fill(rec, fields)
            self.queue.add(rec, result.review)
            yield rec, fields

    def resolve_sets(self, recs: list[RawRecord]) -> list[SetResult]:
        """Steps 1-9 for unique attribute sets (embedding and LLM batched over them)."""
        self.stats["unique_sets"] += len(recs)
        cands: list[Candidates] = []
        pendings: list[list[Pending]] = []
        for rec in recs:
            pieces = split_pieces(rec, self.tools.resources)  # 1
            c, p = exact_candidates(self.tools, pieces)  # 2
            parsed_values(self.tools, pieces, c)  # 3
            cands.append(c)
            pendings.append(p)
        self._embed(cands, pendings)  # 4
        for c in cands:  # 5
            cell_supports_tissue(self.tools, c)
            tissue_parts(self.tools, c)
        decisions = [decide(self.index, c, self.lines) for c in cands]  # 6
        self._ask_llm([d.fields for d in decisions], pendings)  # 7
        out = []
        for rec, d, pend in zip(recs, decisions, pendings):
            conflicts = derive(self.tools, rec, d.fields)  # 8
            for p in pend:
                d.raws.setdefault(p.field, p.raw)
            apply_reviewed(self.reviewed, d.fields, d.raws)  # 9
            items = review_items(self.settings.review_threshold, d.fields, d.raws, pend)
            out.append(SetResult(d.fields, items + conflicts))
        return out

    def _embed(self, cands: list[Candidates], pendings: list[list[Pending]]) -> None:
        s = self.settings
        if s.embedding and self.embedder is not None:
            self.stats["embedding_queries"] += embed_pending(
                self.tools, self.embedder, s.embedding_ontologies, s.candidates, s.embedding_min, cands, pendings)

    def _ask_llm(self, results: list[dict[str, FieldValue]], pendings: list[list[Pending]]) -> None:
        s = self.settings
        questions: dict[tuple[int, str], Question] = {}
        for i, (fields, pend) in enumerate(zip(results, pendings)):
            for fld, q in questions_for(self.index, fields, pend, s.llm_threshold, s.review_threshold,
                                        s.candidates).items():
                questions[(i, fld)] = q
        self.stats["llm_questions"] += len(set(questions.values()))
        ask_llm(self.index, self.llm, questions, results, pendings)
