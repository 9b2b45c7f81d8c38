"""One rule for the column that names samples, and one reader for per-sample tables."""

from __future__ import annotations

import pandas as pd
import pytest

from bulkfm.samples import SampleSheetError, id_column, read_sample_table


def test_sample_id_wins_over_everything():
    t = pd.DataFrame({"run": ["SRR1"], "sample": ["S1"], "sample_id": ["x"]})
    assert id_column(t, known=["SRR1"]) == "sample_id"


def test_sra_tables_are_named_by_run_when_nothing_says_otherwise():
    # sra/metadata.parquet: `sample` is the BioSample (SRS) accession, the run names the sample
    t = pd.DataFrame({"run": ["SRR1", "SRR2"], "sample": ["SRS1", "SRS1"]})
    assert id_column(t) == "run"


def test_the_column_that_matches_the_matrix_is_chosen():
    # a user's label table whose `sample` column holds the sheet's names, `run` the SRA runs
    t = pd.DataFrame({"run": ["SRR1", "SRR2", "SRR3"], "sample": ["liver_a", "liver_b", "x"]})
    assert id_column(t, known=["liver_a", "liver_b"]) == "sample"
    assert id_column(t, known=["SRR2"]) == "run"
    assert id_column(t, known=["nothing"]) == "run"  # a tie keeps the rule's order


def test_no_id_column_names_the_file_and_the_fix():
    with pytest.raises(SampleSheetError, match="labels.tsv.*add a sample_id column"):
        id_column(pd.DataFrame({"donor": ["a"]}), where="labels.tsv")


@pytest.mark.parametrize("name,sep", [("t.tsv", "\t"), ("t.txt", "\t"), ("t.csv", ","),
                                      ("t.csv.gz", ",")])
def test_tables_read_as_text_whatever_the_format(tmp_path, name, sep):
    path = tmp_path / name
    pd.DataFrame({"sample_id": ["007", "010"], "label": ["a", ""]}).to_csv(path, sep=sep,
                                                                          index=False)
    t = read_sample_table(path)
    assert t["sample_id"].tolist() == ["007", "010"] and t["label"].tolist() == ["a", ""]
    pq = tmp_path / "t.parquet"
    t.to_parquet(pq)
    assert read_sample_table(pq)["sample_id"].tolist() == ["007", "010"]
