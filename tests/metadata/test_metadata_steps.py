"""Each harmonizer step (bulkfm.metadata.steps, in the order they run) on its own, on the real
ontology index and bundled resources. Inputs are invented, written like real BioSample/GEO values."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from bulkfm.metadata.confidence import CONF, Confidences
from bulkfm.metadata.records import Candidate, KeyedValue, Pending, Pieces, RawRecord, ReviewItem, TextPiece
from bulkfm.metadata.schema import FEMALE, FIELDS, MALE, FieldValue
from bulkfm.metadata.steps import MIXTURE, Tools
from bulkfm.metadata.steps.s01_pieces import split_pieces
from bulkfm.metadata.steps.s02_exact import exact_candidates
from bulkfm.metadata.steps.s03_parse import parsed_values
from bulkfm.metadata.steps.s04_embed import embed_pending
from bulkfm.metadata.steps.s05_support import cell_supports_tissue, tissue_parts
from bulkfm.metadata.steps.s06_decide import combine, decide
from bulkfm.metadata.steps.s07_llm import questions_for
from bulkfm.metadata.steps.s08_derive import (
    CULTURED_CELL,
    cultured_cell,
    development_stage,
    line_record,
    sex_of_organ,
)
from bulkfm.metadata.steps.s09_curate import ReviewQueue, apply_reviewed, review_items
from bulkfm.metadata.steps.s10_per_sample import TitleFill, technical_fields

LIVER, STOMACH, ESOPHAGUS, MUCOSA = "UBERON:0002107", "UBERON:0000945", "UBERON:0001043", "UBERON:0000344"
KIDNEY, RENAL_CORTEX, OVARY = "UBERON:0002113", "UBERON:0001225", "UBERON:0000992"
HEPATOCYTE, HELA, HCT116 = "CL:0000182", "CVCL_0030", "CVCL_0291"


@pytest.fixture(scope="module")
def tools(index):
    return Tools.build(index)


def _cands(tools, text: str = "", **attributes):
    pieces = split_pieces(RawRecord("S1", attributes=attributes, text=text))
    cands, pending = exact_candidates(tools, pieces)
    parsed_values(tools, pieces, cands)
    return cands, pending


def _empty() -> dict[str, FieldValue]:
    return {f: FieldValue() for f in FIELDS}


# ---------------------------------------------------------------- the table
def test_every_confidence_has_a_reason_and_a_valid_value():
    table = Confidences.reasons()
    assert len(table) > 50
    for name, (value, why) in table.items():
        assert 0.0 <= value <= 1.0, name
        assert len(why) > 15, f"{name}: say why"
    assert CONF.inferred(0.95) == CONF.inferred_ceiling < 0.6 <= CONF.text_scan + CONF.text_named_bonus
    assert CONF.inferred(0.5) == round(0.5 * CONF.inferred_share, 3)


def test_no_confidence_literal_outside_the_table():
    """Steps and the pipeline take every fraction from confidence.CONF: the only float literals
    left are the bounds 0 and 1 (and the Settings defaults, which are configuration)."""
    src = Path(__file__).resolve().parents[2] / "src" / "bulkfm" / "metadata"
    files = [*sorted((src / "steps").glob("*.py"))]
    for p in files:
        floats = [n.value for n in ast.walk(ast.parse(p.read_text())) if isinstance(n, ast.Constant)
                  and isinstance(n.value, float) and n.value not in (0.0, 1.0)]
        assert not floats, f"{p.name}: {floats}"


# ---------------------------------------------------------------- step 1
def test_pieces_keyed_values_and_free_text():
    rec = RawRecord("S1", {"cell type": "hepatocyte", "ID": "P352_141", "sex": "F", "source_name": "liver biopsy",
                           "age": "NA"}, text="normal liver")
    p = split_pieces(rec)
    assert [(k.key, k.field) for k in p.keyed] == [("cell type", "cell_type"), ("ID", None), ("sex", "sex"),
                                                    ("source_name", None)]  # 'NA' dropped
    # describing values are free text for the other fields; bookkeeping (ID) and sex are not
    assert [t.source for t in p.texts] == ["cell type", "source_name", "text"]


# ---------------------------------------------------------------- step 2
def test_exact_dedicated_value_other_key_and_text(tools):
    cands, pending = _cands(tools, text="esophagus normal mucosa", **{"cell type": "hepatocyte",
                                                                      "source_name": "HeLa"})
    ct = cands["cell_type"][0]
    assert (ct.id, ct.method, ct.source) == (HEPATOCYTE, "lexicon", "cell type")
    assert ct.confidence == CONF.lexicon_label * 1.0  # a label under a sure key
    line = [c for c in cands["cell_line"] if c.id == HELA]
    assert line and line[0].confidence == CONF.other_key_exact and line[0].source == "source_name"
    tissue = {c.id: c for c in cands["tissue"]}
    assert {ESOPHAGUS, MUCOSA} <= set(tissue) and all(c.source == "text" for c in tissue.values())
    assert tissue[MUCOSA].confidence < tissue[ESOPHAGUS].confidence  # second hit, shorter phrase
    assert pending == []


def test_exact_mixture_and_open_value(tools):
    cands, pending = _cands(tools, **{"cell line": "HeLa and HEK293", "tissue": "XQ-77b organ"})
    assert cands[MIXTURE][0].value == "HeLa + HEK293" and cands[MIXTURE][0].confidence == CONF.mixture
    assert not cands["cell_line"]  # never one of the lines at random
    assert [(p.field, p.raw) for p in pending] == [("tissue", "XQ-77b organ")]


# ---------------------------------------------------------------- step 3
def test_rules_on_keyed_values_and_text(tools):
    cands, _ = _cands(tools, text="female donor aged 60",
                      **{"sex": "M", "age": "48 years", "treatment": "doxorubicin 1uM 24h"})
    assert [(c.id, c.source, c.confidence) for c in cands["sex"]] == [(MALE, "sex", CONF.rule),
                                                                       (FEMALE, "text", CONF.text_sex)]
    assert [c.value for c in cands["age_years"]] == ["48", "60"]
    pid = cands["perturbation_identity"][0]
    assert pid.id == "CHEBI:28748" and pid.confidence == CONF.compound  # doxorubicin
    assert cands["perturbation_type"][0].value == "compound"
    assert (cands["dose"][0].value, cands["time"][0].value) == ("1 µM", "24 h")


# ---------------------------------------------------------------- step 4
def test_embedding_adds_a_near_term_for_an_open_value(tools, small_embedder):
    p = Pending("cell_type", "helper T-lymphocytes, activated", "cell type", 1.0)
    cands = [{f: [] for f in FIELDS}]
    n = embed_pending(tools, small_embedder, ("CL",), 8, 0.6, cands, [[p]])
    assert n == 1
    (c,) = cands[0]["cell_type"]
    assert c.method == "embedding" and tools.index.is_a(c.id, "CL:0000084")  # a T cell
    assert CONF.embedding_base < c.confidence <= CONF.embedding_cap and p.embedding_hits[0][0] == c.id


# ---------------------------------------------------------------- step 5
def test_cell_type_supports_its_home_tissue(tools):
    cands = {f: [] for f in FIELDS}
    cands["tissue"] = [Candidate(LIVER, "liver", "text", "lexicon", 0.65), Candidate(STOMACH, "stomach", "text",
                                                                                     "lexicon", 0.68)]
    cands["cell_type"] = [Candidate(HEPATOCYTE, "hepatocyte", "cell type", "lexicon", 0.95)]
    assert decide(tools.index, cands).fields["tissue"].ontology_id == STOMACH  # without the support
    cell_supports_tissue(tools, cands)
    added = cands["tissue"][2]
    assert (added.id, added.method, added.confidence) == (LIVER, "rule", round(CONF.cell_home_support * 0.95, 3))
    assert decide(tools.index, cands).fields["tissue"].ontology_id == LIVER  # not stomach


def test_tissue_part_beside_an_organ(tools):
    cands = {f: [] for f in FIELDS}
    cands["tissue"] = [Candidate(ESOPHAGUS, "esophagus", "text", "lexicon", 0.7),
                       Candidate(MUCOSA, "mucosa", "text", "lexicon", 0.68)]
    tissue_parts(tools, cands)
    part = cands["tissue"][-1]
    assert tools.index.is_a(part.id, MUCOSA) and part.id != MUCOSA
    assert "esophag" in tools.index.label(part.id) and part.confidence > 0.7


# ---------------------------------------------------------------- step 6
def test_combine_agreement_rivals_and_a_term_below(tools):
    ix = tools.index
    agree = [Candidate(LIVER, "liver", "tissue", "lexicon", 0.8), Candidate(LIVER, "liver", "text", "lexicon", 0.6)]
    fv, raw = combine(ix, "tissue", agree)
    assert fv.confidence == round(1 - (1 - 0.8) * (1 - 0.6 * CONF.agreement_share), 3) and fv.source == "text;tissue"
    rivals = [Candidate(LIVER, "liver", "a", "lexicon", 0.8), Candidate(STOMACH, "stomach", "b", "lexicon", 0.75)]
    fv, _ = combine(ix, "tissue", rivals)
    assert fv.ontology_id == LIVER and fv.confidence == round(0.8 - CONF.rival_penalty, 3)
    below = [Candidate(KIDNEY, "kidney", "a", "lexicon", 0.9), Candidate(RENAL_CORTEX, "renal cortex", "b",
                                                                         "lexicon", 0.7)]
    fv, _ = combine(ix, "tissue", below)
    assert fv.ontology_id == RENAL_CORTEX and fv.confidence >= 0.9  # the precise term, the winner's support
    assert combine(ix, "sex", [Candidate(MALE, "male", "sex", "rule", 1.5)])[0].confidence == CONF.ceiling


def test_decide_empty_fields_and_mixture(tools):
    cands = {f: [] for f in FIELDS}
    cands["cell_line"] = [Candidate(HELA, "HeLa", "source_name", "lexicon", 0.8)]
    cands[MIXTURE] = [Candidate(None, "HeLa + HEK293", "cell line (names 2 lines)", "lexicon", CONF.mixture,
                                "HeLa and HEK293")]
    d = decide(tools.index, cands)
    assert d.fields["tissue"].empty and "tissue" not in d.raws
    assert d.fields["cell_line"].value == "HeLa + HEK293" and d.raws["cell_line"] == "HeLa and HEK293"


# ---------------------------------------------------------------- step 7
def test_llm_questions_only_for_unsure_fields_with_candidates(tools):
    p = Pending("tissue", "liver-ish organ", "tissue", 1.0, embedding_hits=[(LIVER, "liver", 0.8),
                                                                             (STOMACH, "stomach", 0.7)])
    unsure = {"tissue": FieldValue("liver", LIVER, "tissue", "embedding", 0.62)}
    q = questions_for(tools.index, unsure, [p], 0.7, 0.6, 8)["tissue"]
    assert q.raw == "liver-ish organ" and [c[0] for c in q.candidates] == [LIVER, STOMACH]
    sure = {"tissue": FieldValue("liver", LIVER, "tissue", "lexicon", 0.9)}
    assert questions_for(tools.index, sure, [p], 0.7, 0.6, 8) == {}
    one = Pending("tissue", "liver-ish organ", "tissue", 1.0, embedding_hits=[(LIVER, "liver", 0.8)])
    assert questions_for(tools.index, unsure, [one], 0.7, 0.6, 8) == {}  # could only confirm it


# ---------------------------------------------------------------- step 8
def test_line_record_fills_and_flags(tools):
    f = _empty()
    f["cell_line"] = FieldValue("HCT 116", HCT116, "cell line", "lexicon", 0.95)
    f["sex"] = FieldValue("female", FEMALE, "sex", "rule", 0.95)  # HCT 116 is from a man
    items = line_record(tools, f)
    assert f["disease"].ontology_id and f["disease"].method == "rule"
    assert f["disease"].confidence == CONF.inferred(0.95)
    assert f["sex"].ontology_id == FEMALE  # the label is kept ...
    assert [(i.field, i.candidates) for i in items] == [("sex", [MALE])]  # ... and listed for review


def test_sex_stage_and_cultured_cell(tools):
    f = _empty()
    f["tissue"] = FieldValue("ovary", OVARY, "tissue", "lexicon", 0.9)
    f["age_years"] = FieldValue("48", None, "age", "rule", 0.95)
    f["sample_type"] = FieldValue("cell line", None, "text", "rule", 0.85)
    sex_of_organ(tools, f)
    development_stage(tools, f)
    cultured_cell(tools, f)
    assert f["sex"].ontology_id == FEMALE and f["sex"].confidence == CONF.inferred(0.9)
    assert f["development_stage"].value.startswith("48-year-old")
    assert f["development_stage"].confidence == round(0.95 * CONF.development_stage_share, 3)
    assert f["cell_type"].ontology_id == CULTURED_CELL


# ---------------------------------------------------------------- step 9
def test_reviewed_answer_replaces_and_review_items(tools):
    f = _empty()
    f["tissue"] = FieldValue("stomach", STOMACH, "organ", "lexicon", 0.5)
    raws = {"tissue": "Liver (left lobe)", "cell_line": "XQ-77b"}
    pend = [Pending("cell_line", "XQ-77b", "cell line", 1.0)]
    items = review_items(0.6, f, raws, pend)
    assert [(i.field, i.value.ontology_id) for i in items] == [("tissue", STOMACH), ("cell_line", None)]
    assert items[1].value.source == "cell line: no cell line of this name found"
    apply_reviewed({("tissue", "liver left lobe"): FieldValue("liver", LIVER, "Liver (left lobe)", "reviewed", 1.0)},
                   f, raws)
    assert f["tissue"].ontology_id == LIVER and f["tissue"].method == "reviewed" and f["tissue"].source == "organ"
    assert [i.field for i in review_items(0.6, f, raws, pend)] == ["cell_line"]


def test_review_queue_counts_samples(tools):
    q = ReviewQueue(tools.index)
    item = ReviewItem("tissue", "Liver (left lobe)", FieldValue("liver", LIVER, "organ", "lexicon", 0.5), [STOMACH])
    for i in range(5):
        q.add(RawRecord(f"S{i}"), [item])
    (row,) = q.table()
    assert row["n_samples"] == 5 and row["example_samples"] == "S0;S1;S2"
    assert row["candidates"] == f"{STOMACH}=stomach" and row["proposed_id"] == LIVER


# ---------------------------------------------------------------- step 10
def test_technical_columns_and_title_fill(tools):
    rec = RawRecord("S1", sra={"library_layout": "paired-end", "instrument_model": "Illumina NovaSeq 6000",
                               "title": "HeLa cells, female, rep 7"})
    tech = technical_fields(rec)
    assert tech["library_layout"].value == "PAIRED" and tech["library_layout"].confidence == CONF.sra_case
    assert tech["instrument"].value == "Illumina NovaSeq 6000" and tech["instrument"].method == "sra_field"
    fill = TitleFill(tools)
    fields = _empty()
    fields["sex"] = FieldValue("male", MALE, "sex", "rule", 0.95)
    fill.fill(rec, fields)
    assert fields["cell_line"].ontology_id == HELA and fields["cell_line"].source == "title"
    assert fields["sex"].ontology_id == MALE  # only empty fields are filled
    assert fill.named("title", rec.sra["title"]) is fill.named("title", rec.sra["title"])  # cached per text


def test_keyed_value_and_pieces_are_typed():
    kv = KeyedValue("cell type", "HeLa", "cell_type", 1.0)
    with pytest.raises(AttributeError):
        kv.weight = 0.5  # frozen: a step cannot change what another step read
    assert Pieces([kv], [TextPiece("text", "x")]).keyed[0].field == "cell_type"
