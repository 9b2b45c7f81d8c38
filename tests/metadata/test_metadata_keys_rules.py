from __future__ import annotations

import pytest

from bulkfm.metadata.keys import match_key
from bulkfm.metadata.rules import (
    gene_symbol,
    parse_age,
    parse_dose,
    parse_sex,
    parse_time,
    perturbation_type,
    sample_type_from,
)


@pytest.mark.parametrize("key", ["tissue", "body site", "sampling_site", "tisue", "organism part", "Tissue Type",
                                 "characteristics: tissue", "tissue_source_site", "BODY_SITE"])
def test_tissue_keys(key):
    assert match_key(key).field == "tissue"


@pytest.mark.parametrize("key,field", [("cell type", "cell_type"), ("celltype", "cell_type"), ("cell_line", "cell_line"),
                                       ("gender", "sex"), ("Sex", "sex"), ("donor_age", "age_years"),
                                       ("disease state", "disease"), ("diagnosis", "disease"),
                                       ("treatment", "perturbation_identity"), ("time point", "time"),
                                       ("cell tpye", "cell_type"), ("dev_stage", "development_stage")])
def test_other_keys(key, field):
    assert match_key(key).field == field


@pytest.mark.parametrize("key", ["page", "passage", "sample title", "replicate", "ID"])
def test_unrelated_keys_do_not_match(key):
    assert match_key(key).field is None


def test_weak_keys_carry_low_weight():
    assert match_key("condition").weight < 0.9 and match_key("tissue").weight == 1.0


@pytest.mark.parametrize("value,key,years", [("48", "age", 48), ("7 Year old", "age", 7), ("6 months", "age", 0.5),
                                             ("40-50 y", "age", 45), ("18 wks", "age", 18 / 52.1775),
                                             ("3", "age (months)", 0.25), ("52 Years", "age", 52), ("10 days", "age", 10 / 365.25)])
def test_age(value, key, years):
    got, _ = parse_age(value, key)
    assert got == pytest.approx(years, rel=1e-3)


def test_age_prenatal_and_nonsense():
    assert parse_age("20 pcw", "age") == (None, "20 weeks post-fertilization")
    assert parse_age("not an age", "age") == (None, None)
    assert parse_age("300", "age") == (None, None)


@pytest.mark.parametrize("value,expected", [("F", "female"), ("Female", "female"), ("male", "male"), ("M", "male"),
                                            ("pooled male and female", "unknown")])
def test_sex(value, expected):
    assert parse_sex(value)[0] == expected


def test_dose_and_time_normalised():
    assert parse_dose("100 nM") == "0.1 µM"
    assert parse_dose("10uM doxorubicin") == "10 µM"
    assert parse_dose("5 ng/ml IFN") == "5 ng/mL"
    assert parse_time("24h") == "24 h"
    assert parse_time("day 3") == "72 h"
    assert parse_time("30 min") == "0.5 h"


@pytest.mark.parametrize("value,ptype", [("siRNA against TP53", "RNAi"), ("shGATA3", "RNAi"), ("CRISPR knockout of KRAS", "CRISPR KO"),
                                         ("dCas9-KRAB sgMYC", "CRISPRi"), ("untreated", "control"), ("DMSO", "control"),
                                         ("IFN-gamma 10 ng/ml", "biologic"), ("infected with influenza A", "infection"),
                                         ("hypoxia 1% O2", "environmental"), ("overexpression of MYC", "overexpression")])
def test_perturbation_type(value, ptype):
    assert perturbation_type(value) == ptype


def test_gene_symbol():
    assert gene_symbol("siRNA against TP53") == "TP53"
    assert gene_symbol("shGATA3") == "GATA3"


def test_sample_type_rules():
    kw = dict(has_cell_line=False, has_cell_type=False, has_tissue=False, cell_line_key=False, explicit=None)
    assert sample_type_from("iPSC-derived neurons", **kw)[0] == "in-vitro differentiated"
    assert sample_type_from("H9 embryonic stem cells undifferentiated", **kw)[0] == "cell line"
    assert sample_type_from("patient derived xenograft", **kw)[0] == "xenograft"
    assert sample_type_from("colon organoid", **kw)[0] == "organoid"
    assert sample_type_from("x", **{**kw, "has_cell_line": True})[0] == "cell line"
    assert sample_type_from("liver biopsy", **{**kw, "has_tissue": True})[0] == "primary tissue"
