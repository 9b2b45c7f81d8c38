"""What a named cell line implies: the sex, disease, tissue of origin and cell type of its record.

Source (offline): EFO's cell-line terms as the ``cellxgene-ontology-guide`` snapshot ships them
(EFO v3.90.0 in package 1.11.1): about 1,000 human lines, each with is_a classes that say what
it is ('breast cancer cell line', 'kidney derived cell line', 'B cell derived cell line') and,
for about half, a description of its donor ('established from the pleural effusion of a
69-year-old caucasian woman with metastatic mammary carcinoma'). The Cellosaurus snapshot in the
same package has names only (no sex, disease or site), so a Cellosaurus ID is linked to its EFO
term by name, punctuation-insensitively ('MDA-MB-231' = EFO 'MDAMB231'). The bundled
``cell_line_disease.tsv`` and ``cell_line_sex.tsv`` (Cellosaurus disease and donor sex of widely
used lines) are read too.

What is taken from a record (each with its basis, for the ``source`` column):
- sex: the words the description uses for the donor (woman/girl/female, man/boy/male; both or
  neither: none); else cell_line_sex.tsv; else the organ the line comes from when that organ has one sex (parts of the
  female or male reproductive system in UBERON: cervix, ovary, endometrium; prostate, testis),
  or a breast cancer (lines from male breast cancers are rare: a convention, and a label wins);
- disease: cell_line_disease.tsv, else the MONDO term the description names, else the one its
  class names ('cervical carcinoma cell line');
- tissue: the organ the disease names (hepatocellular carcinoma -> liver), else one its classes
  or description name ('kidney derived cell line', 'fetal lung fibroblast');
- cell type: the cell its classes name ('epithelial cell derived cell line'), else one the
  description names ('derived from peripheral blood monocytes').
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

from bulkfm.metadata.infer import Inference
from bulkfm.metadata.matcher import Matcher
from bulkfm.metadata.ontology import TermIndex, compact
from bulkfm.metadata.resources import cell_line_disease, cell_line_sex
from bulkfm.metadata.rules import sex_in_text
from bulkfm.metadata.schema import FEMALE, MALE, NORMAL

log = logging.getLogger(__name__)

FEMALE_REPRODUCTIVE, MALE_REPRODUCTIVE = "UBERON:0000474", "UBERON:0000079"
BREAST, MAMMARY_GLAND = "UBERON:0000310", "UBERON:0001911"
_NOT_HUMAN = re.compile(r"\b(mouse|murine|rat|hamster|monkey|canine|dog|pig|porcine|bovine|chicken|drosophila|"
                        r"insect|zebrafish|xenopus|yeast)\b", re.I)
_CLASS_TAIL = re.compile(r"\s*(derived\s+)?cell\s+lines?$", re.I)  # 'kidney derived cell line' -> 'kidney'


PLACENTA, EXTRAEMBRYONIC = "UBERON:0001987", "UBERON:0000478"


def organ_sex(index: TermIndex, tissue: str) -> tuple[str, str] | None:
    """('female', PATO id) for a part of the female reproductive system (UBERON part_of/is_a:
    ovary, uterus, cervix), ('male', id) for the male one (prostate, testis); None otherwise.
    The placenta and extraembryonic parts are left out: they are the fetus's, of either sex."""
    if index.is_a(tissue, PLACENTA) or index.is_a(tissue, EXTRAEMBRYONIC):
        return None
    if index.is_a(tissue, FEMALE_REPRODUCTIVE):
        return "female", FEMALE
    if index.is_a(tissue, MALE_REPRODUCTIVE):
        return "male", MALE
    return None


@dataclass
class LineRecord:
    """What the record of one line says; ``basis`` names where each value came from."""

    line: str  # Cellosaurus ID
    name: str
    efo: str | None = None
    sex: tuple[str, str] | None = None  # ('female', PATO id)
    disease: str | None = None
    tissue: str | None = None
    cell_type: str | None = None
    basis: dict[str, str] = field(default_factory=dict)


class CellLineRecords:
    """Cellosaurus ID -> LineRecord, built lazily per line and shared by Harmonizers of an index."""

    def __init__(self, index: TermIndex, matcher: Matcher, infer: Inference, resources: str | None = None) -> None:
        self.index = index
        self.matcher = matcher
        self.infer = infer
        self.diseases = cell_line_disease(resources)
        self.sexes = cell_line_sex(resources)
        shared = index.__dict__.setdefault("_line_records", {})
        self._memo: dict[str, LineRecord] = shared.setdefault(("memo", resources), {})
        if "efo" not in shared:
            shared["efo"] = self._efo_lines()
        self._by_name, self._descriptions = shared["efo"]

    # ---------------------------------------------------------------- EFO cell-line terms
    def _efo_lines(self) -> tuple[dict[str, str], dict[str, str]]:
        """compact name -> EFO ID of human cell-line terms (names shared by two terms dropped),
        and EFO ID -> description (from the snapshot; empty when EFO came from an OBO file)."""
        classes = {t.id for t in self.index.terms.values()
                   if t.ontology == "EFO" and t.label and t.label.endswith("cell line")}
        names: dict[str, set[str]] = {}
        descriptions = self._snapshot_descriptions()
        for t in self.index.terms.values():
            if t.ontology != "EFO" or t.obsolete or t.id in classes or classes.isdisjoint(t.ancestors):
                continue
            anc_labels = " ".join(self.index.label(a) or "" for a in t.ancestors)
            if _NOT_HUMAN.search(anc_labels) or _NOT_HUMAN.search(descriptions.get(t.id, "")[:200]):
                continue
            for name in [t.label, *t.all_synonyms()]:
                base = re.sub(r"\s+cells?$", "", name.strip(), flags=re.I)
                for n in {name, base}:
                    if len(compact(n)) >= 2:
                        names.setdefault(compact(n), set()).add(t.id)
        return {k: next(iter(v)) for k, v in names.items() if len(v) == 1}, descriptions

    def _snapshot_descriptions(self) -> dict[str, str]:
        version = self.index.versions.get("EFO", "")
        if not version.startswith("cxg:"):
            return {}
        try:
            from cellxgene_ontology_guide.supported_versions import CXGSchema

            schema = CXGSchema()
            if f"cxg:{schema.supported_ontologies['EFO']['version']}" != version:
                return {}
            return {k: v["description"] for k, v in schema.ontology("EFO").items() if v.get("description")}
        except Exception as exc:  # a snapshot that cannot be read leaves the class labels only
            log.warning("EFO descriptions unavailable (%s): cell-line records from classes only", exc)
            return {}

    def established(self, lines: list[str]) -> str | None:
        """Of Cellosaurus namesakes ('HT29': HT-29 and an obscure HT29), the one line the bundled
        tables of widely used lines name, if exactly one is."""
        named = [t for t in lines if t in self.sexes or t in self.diseases]
        return named[0] if len(set(named)) == 1 else None

    def efo_term(self, line: str) -> str | None:
        name = self.index.label(line)
        return self._by_name.get(compact(name)) if name else None

    # ---------------------------------------------------------------- one line
    def record(self, line: str) -> LineRecord:
        if line not in self._memo:
            self._memo[line] = self._build(line)
        return self._memo[line]

    def parent(self, line: str) -> str | None:
        """The line a derived one is named after ('A549 Cas9', 'HCT 116 TP53(+/-)', 'U2OS:GFP',
        'LNCaP-abl'): the longest leading part of the name, cut at a separator, that is itself a
        Cellosaurus name. Derived lines come from the same donor, so they share its sex and disease."""
        name = self.index.label(line) or ""
        cuts = {m.start() for m in re.finditer(r"[\s:/(\-_]", name)}
        cuts |= {i for i in range(1, len(name)) if name[i - 1].isdigit() and name[i].isalpha()}  # 'MDA-MB-231|br'
        for cut in sorted(cuts, reverse=True):
            ids = [i for i in self.index.compact_lookup.get(compact(name[:cut]), []) if i != line]
            best = self.established(ids) if len(ids) > 1 else None
            ids = [best] if best else ids  # 'PC3': PC-3
            # a sibling variant ('HCT 116 TP53(-/-)' for '(+/-)') has no record of its own: go on
            if len(compact(name[:cut])) >= 3 and len(ids) == 1 and (self.efo_term(ids[0]) or self._tabled(ids[0])):
                return ids[0]
        return None

    def _build(self, line: str, depth: int = 0) -> LineRecord:
        rec = LineRecord(line, self.index.label(line) or line)
        efo = self.efo_term(line)
        if efo is None and depth == 0 and not self._tabled(line):
            parent = self.parent(line)
            if parent:
                return self._inherit(rec, parent, depth)
        desc = self._descriptions.get(efo, "") if efo else ""
        if efo:
            rec.efo = efo
        where = f"EFO {efo}" if efo else "bundled table"
        described = [(desc, f"{where} description")]
        classed = [(c, f"{where} class '{c}'") for c in self._classes(efo)]
        self._disease(rec, line, described + classed)
        # tissue of origin: the disease's organ, else what the classes or description name
        if rec.disease and rec.disease != NORMAL:
            tid = self.infer.tissue_from_disease(rec.disease)
            if tid:
                rec.tissue, rec.basis["tissue"] = tid, f"{rec.basis['disease']} (organ of the disease)"
        if rec.tissue is None:
            self._first_named(rec, "tissue", classed + described)
        self._first_named(rec, "cell_type", classed + described)
        self._sex(rec, desc, where)
        if depth == 0 and (rec.sex is None or rec.disease is None):
            self._from_parent(rec, depth)
        return rec

    def _parent_record(self, parent: str, depth: int) -> LineRecord:
        if parent not in self._memo:
            self._memo[parent] = self._build(parent, depth + 1)
        return self._memo[parent]

    def _from_parent(self, rec: LineRecord, depth: int) -> None:
        """A derived line whose own record lacks the donor's sex or disease ('HEK293-FT') takes
        them from its parent: the same donor."""
        parent = self.parent(rec.line)
        if parent is None:
            return
        base = self._parent_record(parent, depth)
        for fld in ("sex", "disease"):
            if getattr(rec, fld) is None and getattr(base, fld) is not None:
                setattr(rec, fld, getattr(base, fld))
                rec.basis[fld] = f"parent line {base.name}: {base.basis[fld]}"

    def _tabled(self, line: str) -> bool:
        """A line one of the bundled tables records (it has a record of its own)."""
        return line in self.diseases or line in self.sexes

    def _inherit(self, rec: LineRecord, parent: str, depth: int) -> LineRecord:
        """A subline without a record of its own takes its parent's, said so in the basis."""
        base = self._parent_record(parent, depth)
        rec.efo, rec.sex, rec.disease, rec.tissue, rec.cell_type = (
            base.efo, base.sex, base.disease, base.tissue, base.cell_type)
        rec.basis = {k: f"parent line {base.name}: {v}" for k, v in base.basis.items()}
        return rec

    def _classes(self, efo: str | None) -> list[str]:
        """What the line's direct EFO classes say it is ('cervical carcinoma cell line' -> 'cervical carcinoma')."""
        classes = []
        if efo:
            t = self.index.get(efo)
            parents = [a for a, d in (t.ancestors.items() if t else ()) if d == 1]
            classes = [self.index.label(a) or "" for a in parents]
            classes = [c for c in classes if _CLASS_TAIL.search(c) and " or " not in c]
        return [_CLASS_TAIL.sub("", c) for c in classes]

    def _disease(self, rec: LineRecord, line: str, texts: list[tuple[str, str]]) -> None:
        """The bundled table's disease, else the first MONDO term the texts name."""
        label = self.diseases.get(line)
        if label:
            tid = NORMAL if label == "normal" else next(
                (self.index.resolve(h) for h, _ in self.index.find(label, ("MONDO",))), None)
            if tid:
                rec.disease, rec.basis["disease"] = tid, "cell_line_disease.tsv"
        if rec.disease is None:
            self._first_named(rec, "disease", texts, prefix="MONDO:")

    def _first_named(self, rec: LineRecord, fld: str, texts: list[tuple[str, str]], prefix: str = "") -> None:
        """Set ``fld`` to the first term (of ``prefix``) the (text, basis) pieces name, in order."""
        for text, basis in texts:
            hits = [h for h in self.matcher.scan(fld, text) if h.id.startswith(prefix)] if text else []
            if hits:
                setattr(rec, fld, hits[0].id)
                rec.basis[fld] = basis
                return

    def _sex(self, rec: LineRecord, desc: str, where: str) -> None:
        """The donor as EFO describes it, else the bundled Cellosaurus donor sex (a test checks
        the two never disagree), else an organ (or cancer) of one sex."""
        s = sex_in_text(desc) if desc else None
        tabled = self.sexes.get(rec.line)
        if s:
            rec.sex, rec.basis["sex"] = s, f"{where} description"
        elif tabled:
            rec.sex = (tabled, FEMALE if tabled == "female" else MALE)
            rec.basis["sex"] = "cell_line_sex.tsv (Cellosaurus donor sex)"
        elif rec.tissue and organ_sex(self.index, rec.tissue):
            rec.sex = organ_sex(self.index, rec.tissue)
            rec.basis["sex"] = f"{rec.basis['tissue']}: {rec.sex[0]} reproductive organ"
        elif (rec.tissue and rec.disease and rec.disease != NORMAL
              and (self.index.is_a(rec.tissue, BREAST) or self.index.is_a(rec.tissue, MAMMARY_GLAND))):
            rec.sex, rec.basis["sex"] = ("female", FEMALE), f"{rec.basis['tissue']}: breast cancer"
