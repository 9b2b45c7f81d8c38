"""The harmonizer: raw attribute sets -> one FieldValue per schema field, cheapest method first.

Work is done per *unique attribute set* (identical attributes/text across thousands of runs are
resolved once), and the expensive steps per unique raw value: embedding queries are batched over
the distinct values still unresolved, LLM questions are unique (field, raw text) pairs.

Confidence comes from the method and from agreement: a term found by two independent keys (or a
key and the free text) gains, a competing term close in confidence costs. Below
``review_threshold`` a field is listed for a curator (review.py); at most ``llm_threshold`` and
with candidates it is asked of the LLM when one is configured.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from bulkfm.metadata.embedding import Embedder
from bulkfm.metadata.infer import INFERRED_CEILING, Inference
from bulkfm.metadata.keys import match_key
from bulkfm.metadata.lines import CellLineRecords, organ_sex
from bulkfm.metadata.llm import LLMChooser, LLMConfig, Question
from bulkfm.metadata.matcher import Hit, Matcher
from bulkfm.metadata.ontology import TermIndex, compact, norm
from bulkfm.metadata.rules import (
    NOT_CELLS as _NOT_CELLS,
    gene_symbol,
    is_null,
    parse_age,
    parse_dose,
    parse_sex,
    parse_time,
    perturbation_type,
    sample_type_from,
    explicit_sample_type,
    sex_in_text,
    sra_term,
)
from bulkfm.metadata.schema import FIELD_ONTOLOGIES, FIELDS, NORMAL, FieldValue

log = logging.getLogger(__name__)

STEM_CELL = "CL:0000034"
CULTURED_CELL = "CL:0000010"
# Generic tissue parts that need an organ to name a place ('mucosa', 'cortex'): see _tissue_parts.
TISSUE_PARTS = frozenset({"mucosa", "epithelium", "stroma", "submucosa", "cortex", "medulla", "endothelium",
                          "lamina propria", "muscularis mucosa", "serosa", "parenchyma", "connective tissue"})
# Cell types grown in culture before profiling, practically always (a 'cell line' sample type):
# fibroblast, endothelial cell, smooth muscle cell, stromal cell, keratinocyte, chondrocyte,
# myoblast, mesenchymal stem cell, melanocyte, osteoblast.
CULTURE_CELL_TYPES = ("CL:0000057", "CL:0000115", "CL:0000192", "CL:0000499", "CL:0000312", "CL:0000138",
                      "CL:0000056", "CL:0000134", "CL:0000148", "CL:0000062")
ONTOLOGY_FIELDS = ("tissue", "cell_type", "cell_line", "disease", "development_stage")
# keys whose values describe the sample, so they are free text for the other fields too ('sample
# type: Day 7 Reporter+ H441 Cells' names a line)
DESCRIBING = (*ONTOLOGY_FIELDS, "sample_type")
MIXTURE = "cell_line_mixture"  # candidates key (not a field): a value naming several lines
TECHNICAL = ("library_selection", "library_layout", "library_strategy", "instrument")
# Base confidence of each kind of evidence (before agreement).
CONF = {
    "sra_field": 1.0,
    "rule": 0.95,
    "lexicon_label": 0.95,
    "lexicon_synonym": 0.9,
    "lexicon_lexicon": 0.93,
    "lexicon_typo": 0.8,  # a whole value matched after correcting a misspelt word
    "inside_value": 0.8,  # a term found inside a dedicated key's value
    "other_key_exact": 0.8,  # a whole value of another key ('HeLa' under 'cell type')
    "text_scan": 0.65,  # a term found in free text (title, source_name, description)
}
_AGE_TEXT = re.compile(r"(?:\bage[d]?\s*[:=]?\s*(\d+(?:\.\d+)?)(?:\s*(years?|yrs?|y|months?|mo|weeks?|wk|days?))?)|"
                       r"(\d+(?:\.\d+)?)\s*(?:-|\s)?(years?|yrs?|y|months?|weeks?|days?)\s*(?:-|\s)?old")


_NOT_DESCRIPTIVE = re.compile(
    r"provider|repository|submitter|protocol|institut|center|centre|consent|accession|barcode|batch|replicate|"
    r"\blane\b|library|\bindex\b|\bfile|contact|\blab\b|antibody|platform|instrument|sequenc|\bid\b|"
    r"\bbiosamplemodel\b|\bisolate\b|\bstrain\b|\bpassages?\b|ethnicity|\brace\b|\bgap\b"
)


@dataclass
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
        if "embedding_ontologies" in d:
            d["embedding_ontologies"] = tuple(d["embedding_ontologies"])
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)


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
        fill fields the attributes leave empty (Harmonizer._title_fill, cached per title)."""
        blob = json.dumps([sorted(self.attributes.items()), self.text], ensure_ascii=False)
        return hashlib.sha1(blob.encode()).hexdigest()


@dataclass
class Candidate:
    id: str | None
    value: str | None
    source: str  # raw key(s)
    method: str
    confidence: float
    raw: str = ""  # the raw text it came from (for review / LLM)


@dataclass
class Pending:
    """A field still open after exact lookup: embedding and LLM questions about its raw text."""

    field: str
    raw: str
    source: str
    weight: float
    scan_hits: list[Hit] = field(default_factory=list)
    embedding_hits: list[tuple[str, str, float]] = field(default_factory=list)  # (id, string, cosine)


class Harmonizer:
    def __init__(self, index: TermIndex, settings: Settings | None = None, llm: LLMConfig | None = None,
                 embedder: Embedder | None = None, reviewed: Mapping[tuple[str, str], FieldValue] | None = None,
                 resources: str | None = None) -> None:
        self.index = index
        self.settings = settings or Settings()
        self.matcher = Matcher(index, resources)
        self.infer = Inference(index, self.matcher, resources)
        self.lines = CellLineRecords(index, self.matcher, self.infer, resources)
        self.embedder = embedder
        self.llm = LLMChooser(llm or LLMConfig(), index, resources)
        self.reviewed = dict(reviewed or {})
        self.resources = resources
        self.review: dict[tuple[str, str], dict] = {}
        self._title_cache: dict[tuple[str, str], dict[str, FieldValue]] = {}
        self.stats = {"samples": 0, "unique_sets": 0, "embedding_queries": 0, "llm_questions": 0}

    # ================================================================ public
    def harmonize(self, records: Iterable[RawRecord]) -> Iterable[tuple[RawRecord, dict[str, FieldValue]]]:
        """Yield (record, fields) for every record, in order; work is shared by unique sets.

        Records are consumed in chunks so memory stays bounded by the chunk and the number of
        unique attribute sets, never by the number of samples.
        """
        cache: dict[str, tuple[dict[str, FieldValue], list[tuple]]] = {}
        chunk: list[RawRecord] = []
        for rec in records:
            chunk.append(rec)
            if len(chunk) >= 20000:
                yield from self._chunk(chunk, cache)
                chunk = []
        if chunk:
            yield from self._chunk(chunk, cache)

    def _chunk(self, chunk: list[RawRecord], cache: dict):
        todo: dict[str, RawRecord] = {}
        for rec in chunk:
            k = rec.set_key()
            if k not in cache and k not in todo:
                todo[k] = rec
        if todo:
            resolved = self.resolve_sets(list(todo.values()))
            for k, fields in zip(todo, resolved):
                cache[k] = fields
        for rec in chunk:
            self.stats["samples"] += 1
            set_fields, review = cache[rec.set_key()]
            fields = dict(set_fields)
            fields.update(self._technical(rec))
            for k in ("title", "description"):
                if rec.sra.get(k):
                    for fld, fv in self._title_fill(k, str(rec.sra[k])[:2000]).items():
                        if fields[fld].empty:
                            fields[fld] = fv
            for fld, raw, fv, cand in review:
                row = self.review.get((fld, norm(raw)))
                if row is None:
                    row = self.review[(fld, norm(raw))] = {
                        "field": fld, "raw_value": raw[:300], "source": fv.source or "", "proposed_value": fv.value or "",
                        "proposed_id": fv.ontology_id or "", "method": fv.method or "", "confidence": fv.confidence,
                        "candidates": ";".join(f"{c}={self.index.label(c)}" for c in cand), "n_samples": 0,
                        "example_samples": "", "reviewed_id": "", "reviewed_value": ""}
                row["n_samples"] += 1
                if row["n_samples"] <= 3:
                    row["example_samples"] = ";".join(filter(None, [row["example_samples"], rec.sample_id]))
            yield rec, fields

    # ================================================================ per unique set
    def resolve_sets(self, recs: list[RawRecord]) -> list[tuple[dict[str, FieldValue], list[tuple]]]:
        self.stats["unique_sets"] += len(recs)
        cands: list[dict[str, list[Candidate]]] = []
        pendings: list[list[Pending]] = []
        for rec in recs:
            c, p = self._exact(rec)
            cands.append(c)
            pendings.append(p)
        self._embed(cands, pendings)
        for c in cands:
            self._cell_supports_tissue(c)
            self._tissue_parts(c)
        decided = [self._decide(c) for c in cands]
        results = [d[0] for d in decided]
        raws = [d[1] for d in decided]
        for c, fields, raw in zip(cands, results, raws):
            mix = c.get(MIXTURE)
            if mix:  # a dedicated value naming several lines outranks any one line named elsewhere
                m = mix[0]
                fields["cell_line"] = FieldValue(m.value, None, m.source[:200], m.method, m.confidence)
                raw["cell_line"] = m.raw
        self._ask_llm(results, pendings)
        out = []
        for rec, fields, raw, pend in zip(recs, results, raws, pendings):
            conflicts = self._derive(rec, fields)
            for p in pend:
                raw.setdefault(p.field, p.raw)
            self._apply_reviewed(fields, raw)
            out.append((fields, self._review_items(fields, raw, pend) + conflicts))
        return out

    # ---------------------------------------------------------------- step a + b
    def _pieces(self, rec: RawRecord) -> tuple[list[tuple[str, str, str | None, float]], list[tuple[str, str]]]:
        """(key, value, field, weight) for attribute values, and (source, text) free-text pieces."""
        keyed, texts = [], []
        for k, v in rec.attributes.items():
            if v is None:
                continue
            v = str(v).strip()
            if not v or is_null(v):
                continue
            m = match_key(k, self.resources)
            keyed.append((k, v, m.field, m.weight))
            # every describing value is also free text for the *other* fields ('Human Umbilical
            # Vein Cell' under 'cell type' names a tissue); bookkeeping keys are not
            if (m.field is None or m.field in DESCRIBING) and not _NOT_DESCRIPTIVE.search(norm(k)):
                texts.append((k, v))
        if rec.text:
            texts.append(("text", rec.text))
        return keyed, texts

    def _exact(self, rec: RawRecord) -> tuple[dict[str, list[Candidate]], list[Pending]]:
        keyed, texts = self._pieces(rec)
        cands: dict[str, list[Candidate]] = {f: [] for f in FIELDS}
        pending: list[Pending] = []
        for key, value, fld, weight in keyed:
            if fld in ONTOLOGY_FIELDS:
                hits = self.matcher.lookup(fld, value)
                if hits:
                    amb = len({h.id for h in hits}) > 1
                    for h in hits[:3]:
                        conf = CONF[f"lexicon_{h.kind}"] * min(1.0, weight + 0.05) - (0.2 if amb else 0.0)
                        cands[fld].append(Candidate(h.id, self.index.label(h.id), key, "lexicon", conf, value))
                    continue
                if weight < 0.9:
                    continue  # weak keys ('condition', 'status') count only when the value maps exactly
                if fld == "cell_line":
                    named = self.matcher.lines_named(value)
                    if len(named) >= 2:  # 'HeLa and HEK293': the mixture, never one of them at random
                        cands.setdefault(MIXTURE, []).append(Candidate(
                            None, " + ".join(self.index.label(h.id) or h.id for h in named),
                            f"{key} (names {len(named)} lines)", "lexicon", 0.5, value))
                        continue
                scan = self.matcher.scan(fld, value, dedicated=True)
                if scan and fld != "development_stage":
                    h = scan[0]
                    cover = len(h.matched) / max(1, len(norm(value)))
                    conf = CONF["inside_value"] * weight * (0.85 + 0.15 * cover) - (0.2 if h.kind == "ambiguous" else 0)
                    src = key
                    if h.kind == "variant":  # 'HCT116shP53': the parent line, said so, under review
                        conf, src = conf - 0.25, f"{key} (variant '{h.matched}' of {self.index.label(h.id)})"
                    cands[fld].append(Candidate(h.id, self.index.label(h.id), src, "lexicon", conf, value))
                    if cover < 0.6:  # most of the value unexplained: let embedding/LLM weigh in
                        pending.append(Pending(fld, value, key, weight, scan))
                else:
                    pending.append(Pending(fld, value, key, weight, scan))
        # whole values of other keys naming a cell line ('HeLa' under 'cell type' or 'source_name')
        for key, value, fld, weight in keyed:
            if fld in ("cell_line",) or len(compact(value)) < 2 or len(value) > 60:
                continue
            if parse_sex(value) or norm(value) in ("control", "normal", "none", "treated", "untreated"):
                continue
            hits = [h for h in self.matcher.lookup("cell_line", value) if h.kind == "lexicon" or len(compact(value)) >= 4]
            hits = [h for h in hits if compact(value) not in self._common_words()]
            if len({h.id for h in hits}) == 1:
                cands["cell_line"].append(Candidate(hits[0].id, self.index.label(hits[0].id), key, "lexicon",
                                                    CONF["other_key_exact"], value))
        # free text (source_name, title, other keys): every ontology field
        own = {k: f for k, _v, f, _w in keyed}
        for src, text in texts:
            for fld in ("tissue", "cell_type", "cell_line", "disease"):
                if own.get(src) == fld:
                    continue  # already looked at as this field's own value
                hits = self.matcher.scan(fld, text)[:2]
                for h in hits:
                    conf = CONF["text_scan"] + (0.05 if h.kind in ("label", "lexicon") else 0.0)
                    if h is not hits[0]:
                        # named fewer times than the first (the text is mostly about that), or as
                        # often but by a shorter phrase: the scan's order breaks the tie
                        conf -= 0.1 if h.count < hits[0].count else 0.02
                    cands[fld].append(Candidate(h.id, self.index.label(h.id), src, "lexicon", conf, text))
        self._rules(rec, keyed, texts, cands)
        return cands, pending

    def _title_fill(self, key: str, text: str) -> dict[str, FieldValue]:
        """Fields a run title/description names (cached per text): only fill what is empty."""
        cached = self._title_cache.get((key, text))
        if cached is not None:
            return cached
        out: dict[str, FieldValue] = {}
        for fld in ("tissue", "cell_type", "cell_line", "disease"):
            hits = self.matcher.scan(fld, text)
            if hits:
                h = hits[0]
                out[fld] = FieldValue(self.index.label(h.id), h.id, key, "lexicon", CONF["text_scan"] - 0.05)
        s = sex_in_text(text)
        if s:
            out["sex"] = FieldValue(s[0], s[1], key, "rule", 0.65)
        if len(self._title_cache) > 200_000:  # bounded: titles are often unique per run
            self._title_cache.clear()
        self._title_cache[(key, text)] = out
        return out

    def _common_words(self) -> set[str]:
        return self.matcher.common_words

    def _rules(self, rec: RawRecord, keyed, texts, cands: dict[str, list[Candidate]]) -> None:
        for key, value, fld, weight in keyed:
            if fld == "sex":
                s = parse_sex(value)
                if s:
                    cands["sex"].append(Candidate(s[1], s[0], key, "rule", CONF["rule"] * weight, value))
            elif fld == "age_years":
                years, prenatal = parse_age(value, key)
                if years is not None:
                    cands["age_years"].append(Candidate(None, f"{years:g}", key, "rule", CONF["rule"] * weight, value))
                if prenatal:
                    hits = self.matcher.lookup("development_stage", f"{prenatal} stage")
                    if hits:
                        cands["development_stage"].append(Candidate(hits[0].id, self.index.label(hits[0].id), key,
                                                                    "rule", 0.85, value))
            elif fld == "sample_type":
                st = explicit_sample_type(value)
                if st:
                    cands["sample_type"].append(Candidate(None, st, key, "rule", 0.9 * weight, value))
            elif fld == "perturbation_identity":
                self._perturbation(key, value, weight, cands)
            elif fld == "perturbation_type":
                pt = perturbation_type(value)
                if pt:
                    cands["perturbation_type"].append(Candidate(None, pt, key, "rule", 0.9, value))
            elif fld == "dose":
                d = parse_dose(value)
                if d:
                    cands["dose"].append(Candidate(None, d, key, "rule", CONF["rule"] * weight, value))
            elif fld == "time":
                t = parse_time(value)
                if t:
                    cands["time"].append(Candidate(None, t, key, "rule", CONF["rule"] * weight, value))
            elif fld in TECHNICAL:
                t = sra_term(fld, value)
                if t:
                    cands[fld].append(Candidate(None, t[0], key, "rule", t[1] * 0.95, value))
        # sex / age stated in free text
        for src, text in texts:
            s = sex_in_text(text)
            if s:
                cands["sex"].append(Candidate(s[1], s[0], src, "rule", 0.7, text))
            m = _AGE_TEXT.search(text.lower())
            if m:
                num, unit = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
                years, _ = parse_age(f"{num} {unit or ''}")
                if years is not None:
                    cands["age_years"].append(Candidate(None, f"{years:g}", src, "rule", 0.7, text))

    def _perturbation(self, key: str, value: str, weight: float, cands: dict[str, list[Candidate]]) -> None:
        ptype = perturbation_type(value)
        # strip dose/time so 'doxorubicin 1uM 24h' looks up 'doxorubicin'
        core = re.sub(r"\d+(?:\.\d+)?\s*(?:[pnuµμm]?m|ng/ml|ug/ml|µg/ml|mg/ml|%|h|hr|hrs|hours?|min|d|days?)\b",
                      " ", value, flags=re.I)
        core = re.sub(r"\b(treated with|treatment|treated|for|with|of|and|at)\b", " ", core, flags=re.I).strip(" ,;:-")
        chebi = self.index.find(core, ("CHEBI",)) if core else []
        conf = 0.85 * min(1.0, weight + 0.1)
        if ptype in ("CRISPR KO", "CRISPRi", "CRISPRa", "RNAi", "overexpression"):
            sym = gene_symbol(value)
            if sym:
                cands["perturbation_identity"].append(Candidate(None, sym, key, "rule", conf, value))
        elif chebi and ptype in (None, "compound", "control", "biologic"):
            tid = self.index.resolve(chebi[0][0])
            if tid:
                cands["perturbation_identity"].append(Candidate(tid, self.index.label(tid), key, "lexicon", 0.9, value))
                ptype = ptype or "compound"
        elif ptype in ("biologic", "infection", "environmental") and core:
            cands["perturbation_identity"].append(Candidate(None, core[:80], key, "rule", 0.7, value))
        if ptype:
            cands["perturbation_type"].append(Candidate(None, ptype, key, "rule", conf, value))
        d, t = parse_dose(value), parse_time(value)
        if d:
            cands["dose"].append(Candidate(None, d, key, "rule", 0.85, value))
        if t:
            cands["time"].append(Candidate(None, t, key, "rule", 0.85, value))

    def _cell_supports_tissue(self, cands: dict[str, list[Candidate]]) -> None:
        """A tissue candidate that a cell type candidate resides in gains support: 'hepatocytes
        ... liver resection ... stomach cancer' is liver tissue, not stomach."""
        tissues = {c.id for c in cands["tissue"] if c.id}
        for ct in list(cands["cell_type"]):
            home = self.infer.tissue_from_cell_type(ct.id) if ct.id else None
            if home and any(t == home or self.index.is_a(t, home) for t in tissues):
                cands["tissue"].append(Candidate(home, self.index.label(home), f"{ct.source} (cell type)", "rule",
                                                 round(0.3 * ct.confidence, 3), ct.raw))

    def _tissue_parts(self, cands: dict[str, list[Candidate]]) -> None:
        """A generic tissue part named beside an organ is that organ's part: 'normal mucosa ...
        esophagus' -> 'mucosa of esophagus', 'cortex ... kidney' -> 'cortex of kidney'."""
        found = {c.id: c for c in sorted(cands["tissue"], key=lambda c: c.confidence) if c.id}
        for part_id, part in list(found.items()):
            if norm(self.index.label(part_id) or "") not in TISSUE_PARTS:
                continue
            for organ_id, organ in list(found.items()):
                if organ_id == part_id:
                    continue
                tid = self.infer.part_of(part_id, organ_id)
                if tid:
                    conf = 1 - (1 - max(part.confidence, organ.confidence)) * (1 - 0.5 * min(part.confidence,
                                                                                           organ.confidence))
                    cands["tissue"].append(Candidate(tid, self.index.label(tid), f"{part.source}+{organ.source}"[:200],
                                                     part.method, round(conf, 3), part.raw))
                    break

    # ---------------------------------------------------------------- step c
    def _embed(self, cands: list[dict[str, list[Candidate]]], pendings: list[list[Pending]]) -> None:
        if not self.settings.embedding or self.embedder is None:
            return
        # a value that is a cell line's name ('THP-1', 'H1' under 'cell type') means nothing to a
        # sentence model: nearest neighbours in meaning would be noise
        todo = [(i, p) for i, ps in enumerate(pendings) for p in ps
                if FIELD_ONTOLOGIES[p.field][0] in self.settings.embedding_ontologies
                and not (p.field != "cell_line" and self.matcher.lookup("cell_line", p.raw))]
        if not todo:
            return
        self.embedder.prefetch([p.raw for _, p in todo])
        self.stats["embedding_queries"] += len({(p.field, p.raw) for _, p in todo})
        for i, p in todo:
            onto = FIELD_ONTOLOGIES[p.field][0]
            hits = [h for h in self.embedder.query(p.raw, onto, k=self.settings.candidates)
                    if h[2] >= self.settings.embedding_min and self.matcher._allowed(p.field, h[0])]
            if not hits:
                continue
            tid, _, cos = hits[0]
            margin = cos - (hits[1][2] if len(hits) > 1 else 0.0)
            conf = min(0.9, 0.3 + 0.6 * cos + min(0.1, margin)) * min(1.0, p.weight + 0.05)
            lexical = [c.id for c in cands[i][p.field] if c.source == p.source and c.method == "lexicon" and c.id]
            if lexical and not any(self.index.is_a(tid, x) or self.index.is_a(x, tid) for x in lexical):
                # a term named inside the value outranks a neighbour in meaning that disagrees
                # ('Peripheral blood monocytes': monocyte, not PBMC)
                conf *= 0.75
            cands[i][p.field].append(Candidate(tid, self.index.label(tid), p.source, "embedding", conf, p.raw))
            p.embedding_hits = hits

    # ---------------------------------------------------------------- step e: decide
    def _decide(self, cands: dict[str, list[Candidate]]) -> tuple[dict[str, FieldValue], dict[str, str]]:
        out: dict[str, FieldValue] = {}
        raws: dict[str, str] = {}
        for fld in FIELDS:
            cs = [c for c in cands.get(fld, []) if c.confidence > 0]
            if not cs:
                out[fld] = FieldValue()
                continue
            out[fld], raws[fld] = self._combine(fld, cs)
        return out, raws

    def _combine(self, fld: str, cs: list[Candidate]) -> tuple[FieldValue, str]:
        """Best candidate, with confidence raised by agreeing evidence and lowered by rivals."""
        key = (lambda c: c.id) if fld in FIELD_ONTOLOGIES else (lambda c: c.value)
        groups: dict[str | None, list[Candidate]] = {}
        for c in cs:
            groups.setdefault(key(c), []).append(c)
        scored = []
        for k, grp in groups.items():
            grp.sort(key=lambda c: -c.confidence)
            best = grp[0]
            sources = {c.source for c in grp}
            conf = best.confidence
            for other in grp[1:]:
                if other.source != best.source or other.method != best.method:
                    conf = 1 - (1 - conf) * (1 - other.confidence * 0.5)
            scored.append([conf, best, sources])
        # a more specific term agreeing with a general one (lung / upper lobe of lung) supports it
        if fld in FIELD_ONTOLOGIES:
            for s in scored:
                for t in scored:
                    if s is not t and s[1].id and t[1].id and self.index.is_a(s[1].id, t[1].id):
                        s[0] = 1 - (1 - s[0]) * (1 - t[0] * 0.3)
        scored.sort(key=lambda s: (-s[0], -(self.index.depth(s[1].id) if s[1].id else 0)))
        if fld in FIELD_ONTOLOGIES and scored[0][1].id:
            # a well-supported term below the winner says the same, more precisely ('kidney' +
            # 'renal cortex'): take it, with the winner's support
            top = scored[0]
            below = [s for s in scored[1:] if s[1].id and s[0] >= 0.6 and self.index.is_a(s[1].id, top[1].id)]
            if below:
                pick = max(below, key=lambda s: (self.index.depth(s[1].id), s[0]))
                scored.remove(pick)
                scored.insert(0, [max(pick[0], top[0]), pick[1], pick[2] | top[2]])
        conf, best, sources = scored[0]
        if len(scored) > 1:
            rival_conf, rival = scored[1][0], scored[1][1]
            related = (fld in FIELD_ONTOLOGIES and best.id and rival.id
                       and (self.index.is_a(best.id, rival.id) or self.index.is_a(rival.id, best.id)))
            if not related and rival_conf > conf - 0.15:
                conf -= 0.15  # two different answers about equally supported
        # prefer the dedicated key as the reported source
        fv = FieldValue(value=best.value, ontology_id=best.id, source=";".join(sorted(sources))[:200],
                        method=best.method, confidence=round(max(0.0, min(0.99, conf)), 3))
        return fv, best.raw

    # ---------------------------------------------------------------- step d
    def _ask_llm(self, results: list[dict[str, FieldValue]], pendings: list[list[Pending]]) -> None:
        questions: dict[tuple[int, str], Question] = {}
        for i, (fields, ps) in enumerate(zip(results, pendings)):
            for p in ps:
                fv = fields.get(p.field)
                if fv is not None and fv.confidence > self.settings.llm_threshold:
                    continue
                ids: list[str] = []
                if fv is not None and fv.ontology_id:
                    ids.append(fv.ontology_id)
                ids += [h[0] for h in p.embedding_hits]
                ids += [h.id for h in p.scan_hits]
                ids = list(dict.fromkeys(ids))[: self.settings.candidates]
                if not ids:
                    continue
                if (len(ids) == 1 and fv is not None and fv.ontology_id == ids[0]
                        and fv.confidence >= self.settings.review_threshold):
                    continue  # one candidate, already the answer and above review: a call could only confirm it
                questions[(i, p.field)] = Question(p.field, p.raw, tuple((t, self.index.label(t) or "") for t in ids))
        self.stats["llm_questions"] += len(set(questions.values()))
        self.last_questions = questions  # for inspection (benchmarks)
        if not questions:
            return
        answers = self.llm.choose(list(questions.values()))
        for (i, fld), q in questions.items():
            tid = answers.get(q)
            if not tid:
                continue
            prev = results[i][fld]
            agree = prev.ontology_id == tid
            results[i][fld] = FieldValue(value=self.index.label(tid), ontology_id=tid,
                                         source=prev.source or next(p.source for p in pendings[i] if p.field == fld),
                                         method="llm", confidence=0.9 if agree else 0.75)

    # ---------------------------------------------------------------- derived fields
    def _derive(self, rec: RawRecord, f: dict[str, FieldValue]) -> list[tuple]:
        """Fields that follow from other fields, in dependency order; returns review items for
        what the cell line's record contradicts or lacks."""
        conflicts = self._line_record(f)
        self._implied(f)
        self._sex_of_organ(f)
        self._compose_cell_type(f)
        self._development_stage(f)
        self._sample_type(rec, f)
        self._cultured_cell(f)
        return conflicts

    def _sex_of_organ(self, f: dict[str, FieldValue]) -> None:
        """A sample of an organ of one sex (ovary, uterus, cervix; prostate, testis) is that sex
        when nothing states one (lines.organ_sex): method 'rule', under review."""
        ts = f["tissue"]
        if f["sex"].empty and ts.ontology_id:
            s = organ_sex(self.index, ts.ontology_id)
            if s:
                f["sex"] = FieldValue(s[0], s[1], f"{ts.source} (tissue {ts.value}: {s[0]} reproductive organ)"[:200],
                                      "rule", min(INFERRED_CEILING, round(ts.confidence * 0.7, 3)))

    def _line_record(self, f: dict[str, FieldValue]) -> list[tuple]:
        """Sex, disease, tissue of origin and cell type of a known line's record (lines.py), where
        no label gives them: method 'rule', the record in ``source``, confidence under review. A
        label the record contradicts (sex, disease) is kept and listed for review; so is a line
        whose record has no sex when the sample states none."""
        cl = f["cell_line"]
        if not cl.ontology_id or cl.confidence < 0.5 or not cl.ontology_id.startswith("CVCL_"):
            return []
        rec = self.lines.record(cl.ontology_id)
        conf = min(INFERRED_CEILING, round(cl.confidence * 0.7, 3))
        where = f"{cl.source} (cell line {rec.name})"
        items: list[tuple] = []
        found = {"sex": rec.sex[1] if rec.sex else None, "disease": rec.disease, "tissue": rec.tissue,
                 "cell_type": rec.cell_type}
        for fld, tid in found.items():
            cur = f[fld]
            if tid is None:
                if fld == "sex" and cur.empty:
                    items.append((fld, f"cell line {rec.name}", FieldValue(
                        None, None, f"{where}: its record has no sex", None, 0.0), []))
                continue
            value = rec.sex[0] if fld == "sex" and rec.sex else self.index.label(tid)
            if cur.empty:
                f[fld] = FieldValue(value, tid, f"{where}: {rec.basis.get(fld, 'record')}"[:200], "rule", conf)
            elif fld in ("sex", "disease") and cur.ontology_id and cur.confidence > INFERRED_CEILING and not (
                    cur.ontology_id == tid or self.index.is_a(cur.ontology_id, tid) or self.index.is_a(tid, cur.ontology_id)):
                items.append((fld, f"{cur.value} / cell line {rec.name}: {value}", FieldValue(
                    cur.value, cur.ontology_id, f"{cur.source}; contradicts cell line {rec.name} record "
                    f"({rec.basis.get(fld, 'record')}): {value}"[:200], cur.method, cur.confidence), [tid]))
        return items

    def _compose_cell_type(self, f: dict[str, FieldValue]) -> None:
        """'fibroblast' + tissue 'lung' -> 'fibroblast of lung' when CL has that term."""
        ct, ts = f["cell_type"], f["tissue"]
        if ct.ontology_id and ts.ontology_id and ct.method in ("lexicon", "embedding", "rule"):
            sharper = self.matcher.compose(ct.ontology_id, ts.ontology_id)
            if sharper:
                f["cell_type"] = FieldValue(self.index.label(sharper), sharper, f"{ct.source}+{ts.source}"[:200],
                                            ct.method, round(min(ct.confidence, ts.confidence), 3))

    def _development_stage(self, f: dict[str, FieldValue]) -> None:
        """Development stage from age ('48' -> '48-year-old stage')."""
        if f["development_stage"].empty and f["age_years"].value is not None:
            years = float(f["age_years"].value)
            label = "80 year-old and over stage" if years >= 80 else (f"{int(years)}-year-old stage" if years >= 2 else None)
            hits = self.index.find(label, ("HsapDv",)) if label else []
            if hits:
                f["development_stage"] = FieldValue(self.index.label(hits[0][0]), hits[0][0], f["age_years"].source,
                                                    "rule", round(f["age_years"].confidence * 0.95, 3))

    def _sample_type(self, rec: RawRecord, f: dict[str, FieldValue]) -> None:
        """Sample type from all raw text and what the other fields found."""
        text = " ".join([*(f"{k} {v}" for k, v in rec.attributes.items() if v and not is_null(str(v))), rec.text,
                         rec.sra.get("title", "") or "", rec.sra.get("description", "") or ""])
        explicit = f["sample_type"].value if not f["sample_type"].empty else None
        stated = [(match_key(k, self.resources).field, str(v)) for k, v in rec.attributes.items()
                  if v and not is_null(str(v))]
        keys = {fld for fld, _ in stated}
        # a cell type found by evidence, not inferred (an inferred one says nothing about the sample)
        found = f["cell_type"].ontology_id if f["cell_type"].method != "rule" else None
        st, conf = sample_type_from(
            text,
            has_cell_line=not f["cell_line"].empty and f["cell_line"].confidence >= 0.6,
            has_cell_type=any(fld == "cell_type" and not _NOT_CELLS.search(v.lower()) for fld, v in stated),
            has_tissue=not f["tissue"].empty,
            cell_line_key="cell_line" in keys,
            explicit=explicit,
            found_cell_type=bool(found),
            differentiated_cell_type=bool(found) and not self.index.is_a(found, STEM_CELL),
            culture_cell_type=bool(found) and any(self.index.is_a(found, c) for c in CULTURE_CELL_TYPES),
        )
        if st and (st != explicit or f["sample_type"].empty):
            src = f["sample_type"].source or "+".join(sorted(k for k in keys if k)) or "text"
            f["sample_type"] = FieldValue(st, None, src, "rule", conf)

    def _cultured_cell(self, f: dict[str, FieldValue]) -> None:
        """Cells of a line are 'cultured cell' (CL) by definition when nothing more is known."""
        st = f["sample_type"]
        if st.value == "cell line" and f["cell_type"].empty:
            f["cell_type"] = FieldValue(self.index.label(CULTURED_CELL), CULTURED_CELL, f"{st.source} (sample type)",
                                        "rule", min(INFERRED_CEILING, round(st.confidence * 0.7, 3)))

    def _implied(self, f: dict[str, FieldValue]) -> None:
        """Cell type from the disease's cell of origin; tissue from the cell type or disease;
        'epithelial cell' + tissue -> that tissue's epithelium (infer.py). Only empty fields are
        filled (or an answer sharpened to a term below it), at a confidence below review."""
        def inferred(tid: str, basis: FieldValue, name: str) -> FieldValue:
            conf = min(INFERRED_CEILING, round(basis.confidence * 0.7, 3))
            return FieldValue(self.index.label(tid), tid, f"{basis.source} ({name})"[:200], "rule", conf)

        ds, ct = f["disease"], f["cell_type"]
        if ds.ontology_id and ds.ontology_id != NORMAL:
            origin = self.infer.cell_type_from_disease(ds.ontology_id)
            # a general cell type that the cell of origin lies below is sharpened ('leukocyte' + AML)
            if origin and (ct.empty or (ct.ontology_id and origin != ct.ontology_id
                                         and self.index.is_a(origin, ct.ontology_id))):
                f["cell_type"] = inferred(origin, ds, "cell of origin")
        ct, ts = f["cell_type"], f["tissue"]
        if ts.empty and ct.ontology_id:
            tid = self.infer.tissue_from_cell_type(ct.ontology_id)
            if tid:
                f["tissue"] = inferred(tid, ct, "cell type")
        if f["tissue"].empty and ds.ontology_id and ds.ontology_id != NORMAL:
            tid = self.infer.tissue_from_disease(ds.ontology_id)
            if tid:
                f["tissue"] = inferred(tid, ds, "disease")
        ts = f["tissue"]
        tid = self.infer.tissue_class(ts.ontology_id) if ts.ontology_id else None
        if tid and tid != ts.ontology_id:
            f["tissue"] = FieldValue(self.index.label(tid), tid, ts.source, ts.method, ts.confidence)
        ct, ts = f["cell_type"], f["tissue"]
        if ts.ontology_id and ct.ontology_id and ts.method != "rule":
            tid = self.infer.epithelium(ts.ontology_id, ct.ontology_id)
            if tid:
                f["tissue"] = FieldValue(self.index.label(tid), tid, f"{ts.source}+{ct.source}"[:200],
                                         ts.method, round(min(ts.confidence, ct.confidence), 3))

    # ---------------------------------------------------------------- review read-back
    def _apply_reviewed(self, f: dict[str, FieldValue], raws: dict[str, str]) -> None:
        """A curator's answer for (field, raw text) replaces whatever was found for it."""
        for fld, raw in raws.items():
            hit = self.reviewed.get((fld, norm(raw)))
            if hit is not None:
                f[fld] = FieldValue(hit.value, hit.ontology_id, f[fld].source or hit.source, "reviewed", 1.0)

    def _review_items(self, f: dict[str, FieldValue], raws: dict[str, str], pend: list[Pending]) -> list[tuple]:
        """(field, raw, FieldValue, candidate ids) for fields below the review threshold."""
        items = []
        for fld, raw in raws.items():
            fv = f[fld]
            if fv.method == "reviewed" or fv.confidence >= self.settings.review_threshold:
                continue
            cand = []
            for p in pend:
                if p.field == fld:
                    cand += [h[0] for h in p.embedding_hits] + [h.id for h in p.scan_hits]
            if fv.empty:  # say where the value was and that nothing matched ('cell line: XQ-77b')
                key = next((p.source for p in pend if p.field == fld), None)
                if key:
                    fv = FieldValue(None, None, f"{key}: no {fld.replace('_', ' ')} of this name found", None, 0.0)
            items.append((fld, raw, fv, list(dict.fromkeys(cand))[:5]))
        return items

    def review_table(self) -> list[dict]:
        """Rows for review.tsv, most samples first."""
        rows = sorted(self.review.values(), key=lambda r: (-r["n_samples"], r["field"], r["raw_value"]))
        return rows

    # ---------------------------------------------------------------- technical
    def _technical(self, rec: RawRecord) -> dict[str, FieldValue]:
        out = {}
        for fld in TECHNICAL:
            raw = rec.sra.get(fld) or (rec.sra.get("instrument_model") if fld == "instrument" else None)
            if raw and not is_null(str(raw)):
                t = sra_term(fld, str(raw))
                if t:
                    out[fld] = FieldValue(t[0], None, fld, "sra_field", t[1])
        return out
