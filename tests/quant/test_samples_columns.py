"""A misspelt sheet column is named with its fix instead of becoming a sample attribute."""

from __future__ import annotations

from pathlib import Path

import pytest

from bulkfm.samples import SampleSheetError, check_sheet, misspelt_columns, read_sheet

REPO = Path(__file__).resolve().parents[2]


def _sheet(tmp_path: Path, header: list[str], row: list[str]) -> Path:
    p = tmp_path / "samples.tsv"
    p.write_text("\t".join(header) + "\n" + "\t".join(row) + "\n")
    return p


@pytest.mark.parametrize(("given", "meant"), [
    ("acession", "accession"), ("accessions", "accession"), ("Accession", "accession"),
    ("fastq1", "fastq_1"), ("FASTQ_2", "fastq_2"), ("fastq-1", "fastq_1"), ("samples", "sample"),
])
def test_typo_named_with_fix(tmp_path: Path, given: str, meant: str) -> None:
    other = "fastq_1" if meant != "fastq_1" else "tissue"
    path = _sheet(tmp_path, [given, other], ["SRR11217925", "x"])
    with pytest.raises(SampleSheetError) as err:
        read_sheet(path)
    assert f"column {given!r} looks like {meant!r}: rename it to {meant!r}" in str(err.value)
    assert str(path) in str(err.value)


def test_attributes_that_only_resemble_are_kept() -> None:
    cols = ["sample", "fastq_1", "fastq_3", "tissue", "sex", "example", "sample_type", "study"]
    assert misspelt_columns(cols) == {}


def test_demo_sheet_reads(tmp_path: Path) -> None:
    df = check_sheet(read_sheet(REPO / "config" / "samples.tsv"))
    assert len(df) == 4
