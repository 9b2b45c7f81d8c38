"""The harmonizer's steps, one module each, numbered in the order they run (pipeline.py runs them).

Per unique attribute set:
  s01_pieces     split the attributes into keyed values (key -> field) and free-text pieces
  s02_exact      whole-value lookup and inside-value scan of dedicated keys; other keys' whole
                 values naming a line; free-text scan for every ontology field
  s03_parse      rules: sex, age, sample type, perturbation, dose, time, technical terms
  s04_embed      nearest terms in meaning for values still open (batched over the sets)
  s05_support    evidence between fields: a cell type's home tissue, tissue part + organ
  s06_decide     combine each field's candidates into one answer (agreement, rivals)
  s07_llm        ask the LLM about answers still unsure (batched, unique questions)
  s08_derive     fields that follow from others (cell line record, inferred, sample type ...)
  s09_curate     a curator's answers replace what was found; what is unsure goes to review
Per sample:
  s10_per_sample SRA technical columns; run title/description fill empty fields

Every confidence a step gives comes from the one table in ``bulkfm.metadata.confidence``.
"""

from __future__ import annotations

from dataclasses import dataclass

from bulkfm.metadata.infer import Inference
from bulkfm.metadata.lines import CellLineRecords
from bulkfm.metadata.matcher import Matcher
from bulkfm.metadata.ontology import TermIndex

ONTOLOGY_FIELDS = ("tissue", "cell_type", "cell_line", "disease", "development_stage")
SCAN_FIELDS = ("tissue", "cell_type", "cell_line", "disease")  # fields free text is scanned for
MIXTURE = "cell_line_mixture"  # candidates key (not a field): a value naming several lines
TECHNICAL = ("library_selection", "library_layout", "library_strategy", "instrument")
SOURCE_CHARS = 200  # a reported source (raw keys joined) is cut to this length


@dataclass(frozen=True)
class Tools:
    """What the steps look things up in: built once per harmonizer."""

    index: TermIndex
    matcher: Matcher
    infer: Inference
    lines: CellLineRecords
    resources: str | None = None

    @classmethod
    def build(cls, index: TermIndex, resources: str | None = None) -> "Tools":
        matcher = Matcher(index, resources)
        infer = Inference(index, matcher, resources)
        return cls(index, matcher, infer, CellLineRecords(index, matcher, infer, resources), resources)
