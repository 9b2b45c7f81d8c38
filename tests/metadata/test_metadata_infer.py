"""Fields implied by other fields (infer.py) and the sample-type rules, on the real ontology index.

Inputs are written like real GEO/BioSample text (invented samples, not from labelled sets)."""

from __future__ import annotations

import pytest

from bulkfm.metadata.infer import _table
from bulkfm.metadata.pipeline import Harmonizer, RawRecord, Settings
from bulkfm.metadata.resources import read_rows, resource_dir


@pytest.fixture(scope="module")
def harm(index):
    return Harmonizer(index, Settings(embedding=False))


def _one(harm, text: str = "", **attributes) -> dict:
    return next(iter(harm.harmonize([RawRecord("S1", attributes=attributes, text=text)])))[1]


@pytest.mark.parametrize("table,onto_a,onto_b", [("cell_tissue.tsv", "CL", "UBERON"),
                                                 ("disease_cell_type.tsv", "MONDO", "CL")])
def test_bundled_tables_resolve_to_live_terms(index, table, onto_a, onto_b):
    rows = _table(index, None, table, onto_a, onto_b)
    assert len(rows) == len(read_rows(resource_dir() / table)) > 10
    for a, b in rows:
        assert a.startswith(onto_a) and b.startswith(onto_b)
        assert not index.get(a).obsolete and not index.get(b).obsolete


def test_tissue_from_cell_type(harm):
    f = _one(harm, "primary human hepatocytes treated with rifampicin 24 h")
    assert f["cell_type"].ontology_id == "CL:0000182"
    assert f["tissue"].ontology_id == "UBERON:0002107"  # liver
    assert f["tissue"].method == "rule" and f["tissue"].confidence < 0.6  # inferred: goes to review
    assert "cell type" in f["tissue"].source


def test_cell_type_and_tissue_from_disease(harm):
    f = _one(harm, "hepatoma cell line transfected with control siRNA")
    assert f["disease"].ontology_id == "MONDO:0007256"  # hepatocellular carcinoma
    assert f["cell_type"].ontology_id == "CL:0000182"  # hepatocyte, not just 'epithelial cell'
    assert f["tissue"].ontology_id == "UBERON:0002107"
    f = _one(harm, disease="classical Hodgkin lymphoma", tissue="lymph node")
    assert harm.index.is_a(f["cell_type"].ontology_id, "CL:0000236")  # B cell
    assert f["tissue"].ontology_id == "UBERON:0000029"  # stated tissue kept


def test_general_cell_type_sharpened_by_cell_of_origin(harm):
    f = _one(harm, "white blood cells from bone marrow, acute myeloid leukemia at diagnosis")
    assert f["cell_type"].ontology_id == "CL:0000766"  # myeloid leukocyte, below 'leukocyte'


def test_no_cell_type_from_normal_or_unknown_disease(harm):
    f = _one(harm, tissue="liver", disease="healthy")
    assert f["cell_type"].empty


def test_resident_cell_type_beats_a_metastasis_origin(harm):
    f = _one(harm, "human hepatocytes isolated from liver resection, patient with liver metastasis of "
                   "stomach cancer")
    assert f["tissue"].ontology_id == "UBERON:0002107"


def test_tissue_part_composed_with_organ(harm):
    f = _one(harm, "normal mucosa, normal tissue, esophagus")
    assert f["tissue"].ontology_id == "UBERON:0002469"  # esophagus mucosa
    f = _one(harm, tissue="kidney", source_name="cortex biopsy")
    assert f["tissue"].ontology_id == "UBERON:0001225"  # cortex of kidney


def test_specific_term_agreeing_with_the_key_wins(harm):
    f = _one(harm, tissue="kidney", source_name="renal cortex biopsy")
    assert f["tissue"].ontology_id == "UBERON:0001225"


def test_epithelial_cells_give_the_epithelium(harm):
    f = _one(harm, "bronchial epithelial cells obtained by bronchoscopy brushing, smoker")
    assert f["tissue"].ontology_id == "UBERON:0002031"  # epithelium of bronchus


def test_elided_tissue_head_noun(harm):
    f = _one(harm, "obese insulin resistant subcutaneous adipose, gastric bypass surgery")
    assert f["tissue"].ontology_id == "UBERON:0002190"


def test_named_skeletal_muscle_is_skeletal_muscle_tissue(harm):
    f = _one(harm, tissue="vastus lateralis muscle")
    assert f["tissue"].ontology_id == "UBERON:0001134"


def test_abbreviations_only_in_capitals(harm):
    assert _one(harm, "tumor paired human breast cli po")["tissue"].ontology_id == "UBERON:0000310"
    f = _one(harm, source_name="H9 ESC", **{"time point": "48 hours"})
    assert f["cell_type"].ontology_id == "CL:0002322"  # embryonic stem cell from 'ESC'


def test_no_teleost_terms(harm):
    f = _one(harm, "interdental papilla, gingival tissue sample, periodontitis")
    assert f["tissue"].ontology_id == "UBERON:0001828"  # gingiva, not the zebrafish 'papilla'


@pytest.mark.parametrize("attrs,expected", [
    ({"cell type": "HUVEC", "passage": "Passage 5"}, "cell line"),  # cultured primary cells
    ({"cell type": "fibroblasts", "tissue": "foreskin"}, "cell line"),  # only ever cultured
    ({"cell_line": "THP-1", "sample_type": "cell culture"}, "cell line"),
    ({"cell type": "CD4+ T cells", "source_name": "FACS-sorted from PBMC"}, "primary cells"),
    ({"source_name": "hiPSC forebrain NPCs", "diagnosis": "control"}, "in-vitro differentiated"),
    ({"cell type": "embryonic stem cells", "differentiation state": "undifferentiated", "cell line": "H9"},
     "cell line"),
    ({"tissue": "liver", "source_name": "liver biopsy"}, "primary tissue"),
    ({"cell line": "H1", "source_name": "H1 human embryonic stem cells", "time": "day 12"}, "in-vitro differentiated"),
    ({"cell type": "Basal Cell Carcinoma, nodular", "source_name": "nodular basal cell carcinoma"}, "primary tissue"),
    ({"source_name": "A375 melanoma bearing mouse", "tissue": "A375 tumor"}, "xenograft"),
    # a tissue key naming cells, or islets: isolated cells
    ({"tissue": "delta cells", "donor": "7"}, "primary cells"),
    ({"tissue": "human islets", "age": "51"}, "primary cells"),
    # BioSample's Human package asks for a cell line: 'primary tissue' there is no line
    ({"cell_line": "primary tissue", "tissue": "kidney", "sex": "male"}, "primary tissue"),
    # a donor or sample number is not a line's name ('Donor 12' -> a Cellosaurus line '12')
    ({"cell type": "CD14+ monocytes", "donor id": "Donor 12"}, "primary cells"),
    # a differentiation protocol named; day 0 of a course is the undifferentiated line
    ({"cell type": "bone marrow MSC", "treatment": "osteogenic medium"}, "in-vitro differentiated"),
    ({"cell type": "keratinocytes", "protocol": "differentiated with high calcium for 3 days"},
     "in-vitro differentiated"),
    ({"cell type": "iPS-CM", "source_name": "iPSC line 3"}, "in-vitro differentiated"),
    ({"cell line": "H1", "source_name": "H1 human embryonic stem cells", "time": "day 0"}, "cell line"),
    # immune cells activated or polarised in vitro; 'unstimulated' ones are profiled as taken
    ({"cell type": "naive CD4 T cells", "polarizing condition": "Th17"}, "in-vitro differentiated"),
    ({"cell type": "CD4+ T cells", "stimulation": "unstimulated"}, "primary cells"),
])
def test_sample_type(harm, attrs, expected):
    assert _one(harm, **attrs)["sample_type"].value == expected


def test_cell_line_names_that_efo_also_lists(harm):
    # EFO has its own 'K562' and 'Caki2' terms: they must not make the names 'ordinary words'
    assert _one(harm, isolate="K562", tissue="leukemia")["cell_line"].ontology_id == "CVCL_0004"
    assert _one(harm, **{"cell line": "Caki2-empty vector"})["cell_line"].ontology_id == "CVCL_0235"
    # NCI lung lines written without their prefix
    assert _one(harm, **{"original cell line": "H2087"})["cell_line"].ontology_id == "CVCL_1524"


def test_cell_line_cells_are_cultured_cells_when_nothing_more_is_known(harm):
    f = _one(harm, **{"cell line": "HEK293T", "source_name": "cell_culture"})
    assert f["sample_type"].value == "cell line"
    assert f["cell_type"].ontology_id == "CL:0000010" and f["cell_type"].method == "rule"
    f = _one(harm, **{"cell line": "HepG2", "cell type": "hepatocyte"})
    assert f["cell_type"].ontology_id == "CL:0000182"  # a stated cell type is kept


def test_misspelt_values_are_corrected_against_the_ontology_words(harm):
    f = _one(harm, cell_type="Firoblast", tissue="Dura")
    assert f["cell_type"].ontology_id == "CL:0000057" and f["cell_type"].confidence < 0.95
    assert _one(harm, disease="Glioblastom")["disease"].ontology_id == "MONDO:0018177"
    assert _one(harm, cell_type="adipocites")["cell_type"].ontology_id == "CL:0000136"
    # a word that is simply unknown stays unknown (no nearest guess)
    assert harm.matcher.correct("cell_type", "xylophonist") is None


def test_a_fibroblast_with_no_tissue_is_a_skin_fibroblast(harm):
    f = _one(harm, **{"cell type": "fibroblast", "genotype": "control"})
    assert f["cell_type"].ontology_id == "CL:0002620" and f["cell_type"].method == "rule"
    assert f["cell_type"].confidence < 0.6 and f["tissue"].empty  # inferred, under review; tissue not made up
    f = _one(harm, **{"cell type": "fibroblast", "tissue": "lung"})
    assert f["cell_type"].ontology_id != "CL:0002620"  # a stated tissue wins
    f = _one(harm, **{"cell_line": "SW1353", "cell_type": "fibroblast"})  # a chondrosarcoma line
    assert f["cell_type"].ontology_id != "CL:0002620"  # a named line's record says where it is from


def test_adjective_of_a_cell_name(harm):
    f = _one(harm, "homo sapiens myeloid monocytic cell lps stimulation extract total rna")
    assert f["cell_type"].ontology_id == "CL:0000576"  # monocyte
