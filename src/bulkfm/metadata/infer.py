"""Fields implied by other fields: what a record leaves unsaid but its other answers entail.

Records often name one thing and imply another: 'primary hepatocytes' were taken from a liver,
'hepatocellular carcinoma cell line' is liver-derived, a Hodgkin lymphoma sample's malignant
cells are B cells, 'bronchial epithelial cells' come from the bronchial epithelium. These
inferences run after the direct evidence is decided, only fill what is empty (or sharpen an
answer into a term below it), and carry a lower confidence so that they reach the review queue.
One class mapping is applied to found answers too: a named skeletal muscle is reported as
skeletal muscle tissue (``tissue_class``).

Knowledge comes from the ontologies where they hold it (a CL or MONDO name that names an organ,
'X epithelium' terms in UBERON) and from two small bundled tables where they do not
(``cell_tissue.tsv``, ``disease_cell_type.tsv``: general anatomy and pathology).
"""

from __future__ import annotations

import logging
from collections import Counter

from bulkfm.metadata.matcher import Matcher
from bulkfm.metadata.ontology import TermIndex
from bulkfm.metadata.resources import read_rows, resource_dir

log = logging.getLogger(__name__)

EPITHELIAL_CELL, EPITHELIUM = "CL:0000066", "UBERON:0000483"
SKELETAL_MUSCLE_ORGAN, SKELETAL_MUSCLE_TISSUE = "UBERON:0014892", "UBERON:0001134"
# The confidence of an inferred answer (a share of the evidence it rests on, under a ceiling
# below review) is confidence.CONF.inferred.


def _resolve_label(index: TermIndex, label: str, ontology: str) -> str | None:
    hits = index.find(label, (ontology,))
    return index.resolve(hits[0][0]) if hits else None


def _table(index: TermIndex, directory: str | None, name: str, onto_a: str,
           onto_b: str) -> tuple[tuple[str, str], ...]:
    """(term, answer) rows of a bundled table, resolved once per index. Rows whose terms the
    index lacks (an index built from other OBO files) are skipped with a warning."""
    shared = index.__dict__.setdefault("_infer_tables", {})
    if (directory, name) not in shared:
        path = resource_dir(directory) / name
        rows = []
        for r in read_rows(path) if path.is_file() else []:
            a, b = _resolve_label(index, r[0], onto_a), _resolve_label(index, r[1], onto_b)
            if a and b:
                rows.append((a, b))
            else:
                log.warning("%s: row '%s -> %s' names a term this ontology index lacks; skipped", name, r[0], r[1])
        shared[(directory, name)] = tuple(rows)
    return shared[(directory, name)]


class Inference:
    """Tissue and cell type implied by the cell type, disease and tissue already found."""

    def __init__(self, index: TermIndex, matcher: Matcher, resources: str | None = None) -> None:
        self.index = index
        self.matcher = matcher
        self.cell_tissue = _table(index, resources, "cell_tissue.tsv", "CL", "UBERON")
        self.disease_cell = _table(index, resources, "disease_cell_type.tsv", "MONDO", "CL")
        self._memo: dict[tuple[str, str], str | None] = {}

    def _most_specific(self, term: str, table: tuple[tuple[str, str], ...]) -> str | None:
        """The answer of the deepest table row that ``term`` lies at or below."""
        rows = [(key, answer) for key, answer in table if self.index.is_a(term, key)]
        # drop rows that another matching row refines (hepatocellular carcinoma < carcinoma)
        rows = [r for r in rows if not any(o[0] != r[0] and self.index.is_a(o[0], r[0]) for o in rows)]
        return max(rows, key=lambda r: self.index.depth(r[0]))[1] if rows else None

    def _named_tissue(self, term: str) -> str | None:
        """A tissue named inside a term's label or synonyms ('kidney epithelial cell' -> kidney,
        'carcinoma of liver' -> liver): the one named most often."""
        t = self.index.get(term)
        if t is None:
            return None
        votes: Counter[str] = Counter()
        for name in [t.label, *t.all_synonyms()]:
            for h in self.matcher.scan("tissue", name)[:1]:
                votes[h.id] += 2 if name == t.label else 1
        return votes.most_common(1)[0][0] if votes else None

    def tissue_from_cell_type(self, cell: str) -> str | None:
        key = ("cell", cell)
        if key not in self._memo:
            self._memo[key] = self._named_tissue(cell) or self._most_specific(cell, self.cell_tissue)
        return self._memo[key]

    def tissue_from_disease(self, disease: str) -> str | None:
        key = ("disease", disease)
        if key not in self._memo:
            t = self.index.get(disease)
            found = self._named_tissue(disease) if t and t.ontology == "MONDO" else None
            self._memo[key] = found
        return self._memo[key]

    def cell_type_from_disease(self, disease: str) -> str | None:
        key = ("origin", disease)
        if key not in self._memo:
            self._memo[key] = self._most_specific(disease, self.disease_cell)
        return self._memo[key]

    def epithelium(self, tissue: str, cell: str) -> str | None:
        """'X epithelium' / 'epithelium of X' in UBERON, for epithelial cells taken from X."""
        if not self.index.is_a(cell, EPITHELIAL_CELL):
            return None
        home = self._most_specific(cell, self.cell_tissue)
        if home and not (self.index.is_a(tissue, home) or self.index.is_a(home, tissue)):
            return None  # hepatocytes named beside 'stomach cancer' are not stomach epithelium
        return self.part_of(EPITHELIUM, tissue)

    def part_of(self, part: str, organ: str) -> str | None:
        """'<part> of <organ>' or '<organ> <part>' in UBERON, below the organ ('mucosa' +
        'esophagus' -> 'mucosa of esophagus')."""
        key = (f"part:{part}", organ)
        if key not in self._memo:
            p, o = self.index.get(part), self.index.get(organ)
            found = None
            if p and o:
                organ_names = [o.label] + [s for s in o.all_synonyms() if len(s) > 3][:6]
                for name in organ_names:
                    for phrase in (f"{p.label} of {name}", f"{name} {p.label}"):
                        hits = [self.index.resolve(t) for t, _ in self.index.find(phrase, ("UBERON",))]
                        found = next((t for t in hits if t and t != organ and self.index.is_a(t, organ)), None)
                        if found:
                            break
                    if found:
                        break
            self._memo[key] = found
        return self._memo[key]

    def tissue_class(self, tissue: str) -> str:
        """The tissue a sample of ``tissue`` is: a named skeletal muscle (vastus lateralis,
        quadriceps) is sampled as skeletal muscle tissue - the class expression atlases use
        (GTEx 'Muscle - Skeletal'); UBERON has no 'skeletal muscle tissue of X' terms."""
        if tissue != SKELETAL_MUSCLE_ORGAN and self.index.is_a(tissue, SKELETAL_MUSCLE_ORGAN):
            return SKELETAL_MUSCLE_TISSUE
        return tissue
