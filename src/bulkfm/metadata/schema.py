"""The harmonized record (README, "Metadata harmonization"): every sample gets every field, each with value,
ontology_id, source, method and confidence. The long table has one row per (sample_id, field)."""

from __future__ import annotations

from dataclasses import dataclass

FIELDS: tuple[str, ...] = (
    "age_years",
    "development_stage",
    "sex",
    "tissue",
    "cell_type",
    "cell_line",
    "disease",
    "sample_type",
    "perturbation_identity",
    "perturbation_type",
    "dose",
    "time",
    "library_selection",
    "library_layout",
    "library_strategy",
    "instrument",
)
METHODS: tuple[str, ...] = ("sra_field", "rule", "lexicon", "embedding", "llm", "imputed", "reviewed")
COLUMNS: tuple[str, ...] = ("sample_id", "field", "value", "ontology_id", "source", "method", "confidence")

# Which ontologies answer each field (first = preferred). Fields absent here are rule-based.
FIELD_ONTOLOGIES: dict[str, tuple[str, ...]] = {
    "tissue": ("UBERON",),
    "cell_type": ("CL",),
    "cell_line": ("CVCL",),
    "disease": ("MONDO", "PATO", "EFO"),
    "development_stage": ("HsapDv",),
    "sex": ("PATO",),
    "perturbation_identity": ("CHEBI",),
}

SAMPLE_TYPES: tuple[str, ...] = (
    "primary tissue",
    "primary cells",
    "cell line",
    "xenograft",
    "organoid",
    "in-vitro differentiated",
)
PERTURBATION_TYPES: tuple[str, ...] = (
    "CRISPR KO",
    "CRISPRi",
    "CRISPRa",
    "RNAi",
    "overexpression",
    "compound",
    "biologic",
    "infection",
    "environmental",
    "control",
)
FEMALE, MALE, NORMAL = "PATO:0000383", "PATO:0000384", "PATO:0000461"


@dataclass(slots=True)
class FieldValue:
    value: str | None = None
    ontology_id: str | None = None
    source: str | None = None  # raw key(s) it came from, ';'-joined
    method: str | None = None
    confidence: float = 0.0

    @property
    def empty(self) -> bool:
        return self.value is None and self.ontology_id is None
