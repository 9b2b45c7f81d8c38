"""Every confidence the harmonizer gives or weighs, in one table, each with the reason for it.

A confidence is how sure an answer is (0..1). Base values are per kind of evidence; the others
shift or scale them (a share of the evidence an answer rests on, a penalty, a bonus) or are the
bar a confidence must clear. Reference points: the default review threshold is 0.6 (below it a
field goes to a curator) and the default LLM threshold 0.7 (at most it, with candidates, a field
is asked of the LLM); see ``Settings`` in pipeline.py. Read a value as ``CONF.rule``;
``reasons()`` lists the table.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields


def _c(value: float, why: str):
    return field(default=value, metadata={"why": why})


@dataclass(frozen=True)
class Confidences:
    # ---------------------------------------------------------------- base, per kind of evidence
    rule: float = _c(0.95, "a rule parsed a dedicated key's value (sex, age, dose, time): the parsers are strict")
    lexicon_label: float = _c(0.95, "a dedicated key's whole value is a term's label")
    lexicon_synonym: float = _c(0.9, "a whole value is a term's synonym: synonyms are looser than labels")
    lexicon_lexicon: float = _c(0.93, "a whole value is in the bundled lexicon (curated spellings)")
    lexicon_typo: float = _c(0.8, "a whole value matched after correcting a misspelt word")
    inside_value: float = _c(0.8, "a term found inside a dedicated key's value (the rest unexplained)")
    other_key_exact: float = _c(0.8, "a whole value of another key names one line ('HeLa' under 'cell type')")
    text_scan: float = _c(0.65, "a term found in free text (title, source_name, description): just above review")
    mixture: float = _c(0.5, "a value naming several lines is the mixture: below review, a curator checks it")
    prenatal_stage: float = _c(0.85, "a prenatal age ('20 weeks gestation') names a stage; the stage term is a lookup")
    text_sex: float = _c(0.7, "sex stated in free text ('female donor'): text may speak of someone else")
    text_age: float = _c(0.7, "age stated in free text ('48 years old'): likewise")
    title_sex: float = _c(0.65, "sex in a run title/description, which only fills an empty field")
    perturbation: float = _c(0.85, "a perturbation's type or gene parsed from its key (before the key's weight)")
    compound: float = _c(0.9, "a perturbation value that is a ChEBI compound's name")
    perturbation_free: float = _c(0.7, "a biologic/infection/environmental perturbation kept as its text")
    perturbation_dose_time: float = _c(0.85, "dose/time parsed from a perturbation value, not from their own key")
    sample_type_key: float = _c(0.9, "a sample type key's value in our vocabulary (times the key's weight)")
    perturbation_type_key: float = _c(0.9, "a perturbation type key's value in our vocabulary")
    technical_in_attributes: float = _c(0.95, "an SRA technical term found in the attributes, not the SRA column")
    llm_agrees: float = _c(0.9, "the LLM chose the term the cheaper steps had: two methods agree")
    llm_alone: float = _c(0.75, "the LLM chose another candidate: its word against the others'")
    reviewed: float = _c(1.0, "a curator's answer")
    # ---------------------------------------------------------------- shifts and shares
    key_bonus: float = _c(0.05, "a value that maps (lookup, embedding) forgives a slightly uncertain key (weight + this, at most 1)")
    ambiguous: float = _c(0.2, "the value maps to several terms: any one is a guess")
    variant: float = _c(0.25, "a named variant of a line ('HCT116shP53') reported as its parent: under review")
    strong_key: float = _c(0.9, "a key at least this sure of its field (keys.py weight) has its value searched inside; "
                                "weaker keys ('condition', 'status') count only when the whole value maps")
    inside_cover_min: float = _c(0.6, "an inside-value hit covering less than this share of the value leaves it open "
                                      "for embedding and LLM")
    perturbation_key_bonus: float = _c(0.1, "a perturbation value parsed into a type forgives an uncertain key more "
                                            "(weight + this, at most 1): perturbation keys vary most")
    inside_cover_base: float = _c(0.85, "an inside-value hit keeps this share however little of the value it covers")
    inside_cover_share: float = _c(0.15, "... and gains this share in proportion to the value it covers")
    text_named_bonus: float = _c(0.05, "a text hit on a label or lexicon entry (not a synonym) is surer")
    text_second_fewer: float = _c(0.1, "a second text hit named fewer times than the first: the text is about the first")
    text_second_tie: float = _c(0.02, "a second text hit named as often, by a shorter phrase: the scan's order breaks the tie")
    title_scan_penalty: float = _c(0.05, "a run title/description is less about the sample than its attributes")
    cell_home_support: float = _c(0.3, "share of a cell type's confidence its home tissue gains: support, not an answer")
    part_organ_support: float = _c(0.5, "share of the weaker of tissue part and organ that adds to the stronger")
    embedding_base: float = _c(0.3, "embedding: confidence at cosine 0 (before margin and key weight)")
    embedding_cosine: float = _c(0.6, "embedding: gain per unit of cosine similarity")
    embedding_margin: float = _c(0.1, "embedding: most that the lead over the runner-up adds")
    embedding_cap: float = _c(0.9, "embedding: a neighbour in meaning is never surer than an exact name")
    embedding_disagrees: float = _c(0.75, "embedding: factor when a term named inside the value disagrees")
    agreement_share: float = _c(0.5, "share of an agreeing piece of evidence (other key or method) that adds")
    below_support: float = _c(0.3, "share of a general term's confidence that a term below it gains")
    below_min: float = _c(0.6, "a term below the winner replaces it when at least this sure (says the same, more precisely)")
    rival_margin: float = _c(0.15, "a different answer within this of the best makes the best doubtful ...")
    rival_penalty: float = _c(0.15, "... and costs it this")
    ceiling: float = _c(0.99, "no combined evidence is certain; 1.0 is a curator's")
    inferred_share: float = _c(0.7, "an answer inferred from another field: this share of that field's confidence ...")
    inferred_ceiling: float = _c(0.55, "... and at most this, below the default review threshold (0.6): a curator sees it")
    line_record_min: float = _c(0.5, "a cell line this sure has its record's sex/disease/tissue/cell type used")
    development_stage_share: float = _c(0.95, "development stage from age: the age's confidence, the stage lookup nearly sure")
    sample_type_line_min: float = _c(0.6, "a cell line at least this sure counts as named for the sample type")
    # ---------------------------------------------------------------- SRA vocabulary (rules.sra_term)
    sra_exact: float = _c(1.0, "the SRA's own spelling, or a free vocabulary (instrument) as submitted")
    sra_case: float = _c(0.9, "an SRA term up to case/punctuation, or a layout's prefix ('paired-end')")
    sra_unknown: float = _c(0.6, "not in the SRA vocabulary: kept as written, at the review threshold")
    # ---------------------------------------------------------------- sample type (rules.sample_type_from)
    st_xenograft: float = _c(0.85, "'xenograft'/'PDX' is said only of xenografts")
    st_differentiated: float = _c(0.8, "stem cells with a differentiation cue: in-vitro differentiated")
    st_organoid: float = _c(0.85, "'organoid' is said only of organoids")
    st_line_over_stated: float = _c(0.7, "a stated tissue/primary cells that a named line contradicts")
    st_stated: float = _c(0.85, "the sample type the submitter stated, nothing contradicting")
    st_line_named: float = _c(0.85, "a cell line found for the sample")
    st_line_cue: float = _c(0.75, "a cell line key or a 'cell line' cue, no line found")
    st_stem_line: float = _c(0.65, "ESC/iPSC named without a differentiation cue: usually a line")
    st_cultured: float = _c(0.6, "cells said to be cultured, or of a type only profiled after culture")
    st_primary_cells: float = _c(0.7, "a cell type named (isolated cells) without culture cues")
    st_primary_tissue: float = _c(0.7, "a tissue named without cell or culture cues")

    def lexicon(self, kind: str) -> float:
        """Base confidence of a whole-value lookup hit of ``kind`` (label, synonym, lexicon, typo)."""
        return getattr(self, f"lexicon_{kind}")

    def inferred(self, basis: float) -> float:
        """An answer inferred from another field's answer of confidence ``basis``."""
        return min(self.inferred_ceiling, round(basis * self.inferred_share, 3))

    @classmethod
    def reasons(cls) -> dict[str, tuple[float, str]]:
        """name -> (value, why), in table order."""
        return {f.name: (f.default, f.metadata["why"]) for f in fields(cls)}


CONF = Confidences()
