"""What a named cell line implies (lines.py: EFO cell-line records in the snapshot) and cell-line
names as users write them, on the real ontology index. Inputs are invented, written like real
BioSample/GEO values (not taken from the labelled sets)."""

from __future__ import annotations

import pytest

from bulkfm.metadata.pipeline import Harmonizer, RawRecord, Settings
from bulkfm.metadata.schema import FEMALE, MALE


@pytest.fixture(scope="module")
def harm(index):
    return Harmonizer(index, Settings(embedding=False))


def _run(harm, **attributes):
    harm.review.clear()
    rec, f = next(iter(harm.harmonize([RawRecord("S1", attributes=attributes)])))
    return f, harm.review_table()


def test_record_of_a_line_from_the_efo_snapshot(harm):
    rec = harm.lines.record("CVCL_0031")  # MCF-7
    assert rec.efo == "EFO:0001203"
    assert rec.sex == ("female", FEMALE) and "description" in rec.basis["sex"]  # '... caucasian woman ...'
    assert harm.index.is_a(rec.tissue, "UBERON:0000310")  # breast
    assert rec.cell_type == "CL:0000066"  # 'epithelial cell derived cell line'
    thp1 = harm.lines.record("CVCL_0006")
    assert thp1.sex == ("male", MALE) and thp1.cell_type == "CL:0000576"  # monocyte, from the description
    # HEK293's EFO record says nothing of its sex: the bundled Cellosaurus donor sex does
    hek = harm.lines.record("CVCL_0045")
    assert hek.sex == ("female", FEMALE) and "cell_line_sex.tsv" in hek.basis["sex"]
    # a line whose records say nothing of its sex
    assert harm.lines.record("CVCL_0504").sex is None  # RKO


def test_bundled_line_sex_agrees_with_every_other_record(harm):
    """Where EFO's description or a one-sex organ also says the donor's sex, the bundled table
    says the same (an independent check of a hand-entered table), and every row names a line."""
    from bulkfm.metadata.lines import organ_sex
    from bulkfm.metadata.rules import sex_in_text

    lines, checked = harm.lines, 0
    assert len(lines.sexes) > 200
    for cid, sex in lines.sexes.items():
        assert harm.index.label(cid), cid  # an ID the Cellosaurus snapshot has
        efo = lines.efo_term(cid)
        said = sex_in_text(lines._descriptions.get(efo, "")) if efo else None
        rec = lines.record(cid)
        other = said or (organ_sex(harm.index, rec.tissue) if rec.tissue else None)
        if other:
            checked += 1
            assert other[0] == sex, (cid, harm.index.label(cid), sex, other)
    assert checked > 50


def test_a_derived_line_inherits_the_bundled_sex(harm):
    f, _ = _run(harm, **{"cell line": "HEK293 TP53 KO clone 3"})
    assert f["sex"].ontology_id == FEMALE and "cell_line_sex.tsv" in f["sex"].source


def test_sex_disease_tissue_filled_from_the_line(harm):
    f, review = _run(harm, **{"cell line": "HCT116", "treatment": "DMSO"})
    assert f["cell_line"].ontology_id == "CVCL_0291"
    assert f["sex"].ontology_id == MALE and f["sex"].method == "rule" and f["sex"].confidence < 0.6
    assert "cell line HCT 116" in f["sex"].source and "EFO" in f["sex"].source
    assert f["disease"].method == "rule" and f["disease"].confidence < 0.6
    assert harm.index.is_a(f["tissue"].ontology_id, "UBERON:0001155")  # colon
    assert not [r for r in review if r["field"] == "sex"]


def test_sex_of_an_organ_with_one_sex(harm):
    f, _ = _run(harm, **{"cell line": "C-4 I"})  # cervical carcinoma: uterine cervix
    assert f["sex"].ontology_id == FEMALE and "female reproductive" in f["sex"].source


def test_label_wins_and_a_contradiction_goes_to_review(harm):
    f, review = _run(harm, **{"cell line": "MCF-7", "sex": "male"})
    assert f["sex"].ontology_id == MALE and f["sex"].method == "rule" and "contradicts" not in f["sex"].source
    rows = [r for r in review if r["field"] == "sex"]
    assert len(rows) == 1 and "contradicts cell line MCF-7" in rows[0]["source"]
    assert rows[0]["proposed_value"] == "male" and rows[0]["candidates"].startswith(FEMALE)
    f, review = _run(harm, **{"cell line": "K562", "disease": "glioblastoma"})
    assert f["disease"].value == "glioblastoma"
    assert [r for r in review if r["field"] == "disease" and "contradicts cell line K-562" in r["source"]]


def test_line_without_sex_in_its_record_is_listed_not_guessed(harm):
    f, review = _run(harm, **{"cell line": "RKO", "rna fraction": "nuclear"})
    assert f["sex"].empty
    rows = [r for r in review if r["field"] == "sex"]
    assert rows and "its record has no sex" in rows[0]["source"] and rows[0]["raw_value"] == "cell line RKO"


# ------------------------------------------------------------------ names as users write them
def test_several_lines_in_one_value_give_the_mixture_for_review(harm):
    f, review = _run(harm, **{"cell line": "MCF7 + T47D co-culture", "source_name": "MCF7 co-culture"})
    cl = f["cell_line"]
    assert cl.ontology_id is None and cl.value == "MCF-7 + T-47D"  # each, in the value's order
    assert cl.confidence < 0.6 and "names 2 lines" in cl.source
    assert f["sex"].empty  # no line's record is applied to a mixture
    assert [r for r in review if r["field"] == "cell_line" and r["proposed_value"] == cl.value]
    # one line written with more names is not a mixture
    for value, line in (("BJ (ATCC CRL-2522)", "CVCL_3653"), ("HEK 293 T-REx cell", None)):
        f, _ = _run(harm, **{"cell line": value})
        assert " + " not in (f["cell_line"].value or "")
        if line:
            assert f["cell_line"].ontology_id == line


def test_glued_variant_suffix_is_the_parent_line_under_review(harm):
    f, review = _run(harm, **{"cell line": "HCT116shP53"})
    assert f["cell_line"].ontology_id == "CVCL_0291" and f["cell_line"].confidence < 0.6
    assert "variant 'hct116shp53' of HCT 116" in f["cell_line"].source
    assert [r for r in review if r["field"] == "cell_line"]
    assert f["sex"].ontology_id == MALE  # the parent's record still applies
    f, _ = _run(harm, **{"cell line": "KRASmut"})  # a gene, not a line: nothing
    assert f["cell_line"].empty


def test_derived_line_takes_its_parents_record(harm):
    f, _ = _run(harm, **{"cell line": "LNCaP-abl"})  # its own Cellosaurus entry, no EFO record
    assert f["cell_line"].ontology_id == "CVCL_4793"
    assert f["sex"].ontology_id == MALE and "parent line LNCaP" in f["sex"].source


def test_line_named_only_in_source_name(harm):
    f, _ = _run(harm, source_name="HeLa_siControl_rep1")
    assert f["cell_line"].ontology_id == "CVCL_0030"
    f, _ = _run(harm, source_name="HaCaT_DMSO_rep1")
    assert f["cell_line"].ontology_id == "CVCL_0038"
    f, _ = _run(harm, source_name="hacat_dmso_rep1")  # written as an ordinary word: not trusted
    assert f["cell_line"].empty
    f, _ = _run(harm, **{"sample type": "Day 7 Reporter+ H441 Cells"})
    assert f["cell_line"].ontology_id == "CVCL_1561"  # NCI-H441


def test_sex_of_a_one_sex_organ_but_not_of_the_placenta(harm):
    f, _ = _run(harm, tissue="prostate", disease="benign prostatic hyperplasia")
    assert f["sex"].ontology_id == MALE and f["sex"].method == "rule" and f["sex"].confidence < 0.6
    assert "male reproductive organ" in f["sex"].source
    f, _ = _run(harm, tissue="ovary")
    assert f["sex"].ontology_id == FEMALE
    f, _ = _run(harm, tissue="placenta")  # the fetus's organ: either sex
    assert f["sex"].empty
    f, _ = _run(harm, tissue="prostate", sex="female")  # a stated sex is never replaced
    assert f["sex"].ontology_id == FEMALE


def test_knock_out_and_knock_in_designations(harm):
    f, _ = _run(harm, **{"cell line": "HCT116 TP53-/-"})
    assert f["cell_line"].ontology_id == "CVCL_HD97"  # 'HCT 116 TP53(-/-)', not the (+/-) line
    assert f["cell_line"].confidence >= 0.6 and f["sex"].ontology_id == MALE  # parent HCT 116's record
    for value in ("HEK293 TP53 KO", "K562 KO clone 3", "HeLa PTEN knock-in"):
        f, _ = _run(harm, **{"cell line": value})
        assert f["cell_line"].ontology_id in ("CVCL_0045", "CVCL_0004", "CVCL_0030"), value


def test_unknown_line_name_is_listed_with_its_key(harm):
    f, review = _run(harm, **{"cell line": "QZX-77b"})
    assert f["cell_line"].empty and f["sex"].empty
    rows = [r for r in review if r["field"] == "cell_line"]
    assert rows and rows[0]["raw_value"] == "QZX-77b" and "cell line: no cell line of this name found" in rows[0]["source"]


def test_an_immortalised_line_written_without_its_htert_prefix(harm):
    f, _ = _run(harm, **{"cell line": "RPE1 TP53-/-"})
    assert f["cell_line"].ontology_id == "CVCL_4388"  # hTERT-RPE1
    assert f["sex"].ontology_id == FEMALE


def test_a_derived_line_with_its_own_record_takes_what_the_record_lacks_from_its_parent(harm):
    rec = harm.lines.record("CVCL_6911")  # HEK293-FT: an EFO term of its own, no donor sex in it
    assert rec.sex == ("female", FEMALE) and rec.basis["sex"].startswith("parent line HEK293:")
    f, _ = _run(harm, **{"cell line": "293FT"})
    assert f["cell_line"].ontology_id == "CVCL_6911" and f["sex"].ontology_id == FEMALE


def test_line_names_that_are_donor_numbers_or_cell_words_are_not_lines(harm):
    for attrs in ({"donor id": "Donor 12", "cell type": "CD8+ T cells"},
                  {"submitted sample id": "Sample_207", "body site": "Liver"},
                  {"cell type": "Beta", "tissue": "pancreatic islets"},
                  {"source_name": "sorted alpha cells", "collection date": "2014"}):
        f, _ = _run(harm, **attrs)
        assert f["cell_line"].empty, attrs
        assert f["sample_type"].value != "cell line", attrs


def test_a_name_told_apart_by_a_human_bracket_is_found_as_written(harm):
    f, _ = _run(harm, **{"cell_line": "HK-2", "tissue": "kidney"})
    assert f["cell_line"].ontology_id == "CVCL_0302"  # 'HK-2 [Human kidney]'
    assert f["sex"].ontology_id == MALE


def test_of_namesakes_the_widely_used_line_is_taken_and_its_record_applies(harm):
    f, _ = _run(harm, **{"cell line": "acute myeloid leukemia cell line KG1"})
    assert f["cell_line"].ontology_id == "CVCL_0374"  # KG-1, not the obscure 'KG1'
    assert f["sex"].ontology_id == MALE
    f, _ = _run(harm, **{"cell type": "Mino cells stably expressing shBTK"})  # free text of another key
    assert f["cell_line"].ontology_id == "CVCL_1872"


def test_a_cell_line_key_saying_primary_is_no_line_and_no_review_row(harm):
    f, review = _run(harm, **{"cell_line": "primary tissue", "tissue": "kidney", "sex": "male"})
    assert f["cell_line"].empty and f["sample_type"].value == "primary tissue"
    assert not [r for r in review if r["field"] == "cell_line"]


def test_a_subline_named_beside_its_parent_is_the_answer(harm):
    f, _ = _run(harm, **{"cell line": "LNCaP", "source_name": "LNCaP-abl cells"})
    assert f["cell_line"].ontology_id == "CVCL_4793"  # LNCaP-abl, not LNCaP
    assert f["sex"].ontology_id == MALE
    f, _ = _run(harm, **{"cell line": "PC3", "source_name": "PC3-Epi"})
    assert f["cell_line"].ontology_id == "CVCL_B0CB"  # its parent 'PC3' is PC-3 (the tabled namesake)
    f, _ = _run(harm, **{"cell line": "MCF7", "source_name": "MCF7 cells"})
    assert f["cell_line"].ontology_id == "CVCL_0031"  # the same line twice: itself
    f, _ = _run(harm, **{"cell line": "HeLa", "sample_title": "HeLa_Gfp_expression_control_rep1"})
    assert f["cell_line"].ontology_id == "CVCL_0030"  # a tag inside free text is no subline
