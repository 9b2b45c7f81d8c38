"""Sample sheet validation and batching."""

from __future__ import annotations

import pandas as pd
import pytest

from bulkfm import samples as bs


def sheet(rows):
    df = pd.DataFrame(rows).fillna("")
    for col in ("sample", "accession", "fastq_1", "fastq_2"):
        if col not in df:
            df[col] = ""
    return df


def test_runs_and_local_files_plan_offline_with_names():
    df = bs.check_sheet(sheet([{"accession": "SRR1234567"},
                               {"fastq_1": "x/a_R1.fastq.gz", "fastq_2": "x/a_R2.fastq.gz"},
                               {"accession": "ERR188021", "sample": "geu1"}]))
    assert df["sample"].tolist() == ["SRR1234567", "a", "geu1"]
    assert not bs.needs_resolution(df)
    s = bs.samples_from_sheet(df)
    assert s[0].run == "SRR1234567" and s[1].fastqs == ["x/a_R1.fastq.gz", "x/a_R2.fastq.gz"]


def test_studies_need_resolution():
    df = bs.check_sheet(sheet([{"accession": "PRJEB18997"}, {"accession": "GSE12345"}]))
    assert bs.needs_resolution(df)
    assert df["kind"].tolist() == ["project", "geo_series"]


@pytest.mark.parametrize("rows, message", [
    ([{"accession": "SRR1234567; rm -rf /"}], "not a valid"),
    ([{"accession": "SRR1234567", "fastq_1": "a.fq"}], "both accession and fastq_1"),
    ([{"sample": "x"}], "neither accession nor fastq_1"),
    ([{"fastq_2": "b.fq", "accession": "SRR1234567"}], "fastq_2 without fastq_1"),
    ([{"accession": "SRR1234567", "sample": "../etc"}], "may contain only"),
    ([{"accession": "SRR1234567", "sample": "a"}, {"accession": "SRR7654321", "sample": "a"}], "appears twice"),
    # the same run or FASTQ under two names would be quantified twice (issue 16)
    ([{"accession": "SRR1234567", "sample": "a"}, {"accession": "SRR7654321"}, {"accession": "srr1234567", "sample": "c"}],
     r"rows 2 and 4 \(samples 'a' and 'c'\) name the same run 'SRR1234567'"),
    ([{"fastq_1": "r/a_1.fq.gz", "fastq_2": "r/a_2.fq.gz"}, {"fastq_1": "./r/a_2.fq.gz", "sample": "b"}],
     r"rows 2 and 3 \(samples 'a' and 'b'\) name the same FASTQ file 'r/a_2.fq.gz'"),
])
def test_bad_rows_are_rejected_with_the_row(rows, message):
    with pytest.raises(bs.SampleSheetError, match=message):
        bs.check_sheet(sheet(rows))


def test_appending_samples_changes_only_the_last_batch():
    runs = [bs.Sample(f"SRR{1000000 + i}", f"SRR{1000000 + i}", None, None) for i in range(25)]
    more = runs + [bs.Sample("SRR2000000", "SRR2000000", None, None)]
    ids = bs.batch_ids(len(runs), 10)
    assert ids == ["b00000", "b00001", "b00002"]
    for b in ids[:2]:
        assert bs.batch_signature(bs.batch_members(runs, b, 10)) == bs.batch_signature(bs.batch_members(more, b, 10))
    assert bs.batch_signature(bs.batch_members(runs, "b00002", 10)) != bs.batch_signature(bs.batch_members(more, "b00002", 10))


def test_read_sheet_from_resolved_runs_table(tmp_path):
    table = pd.DataFrame({"run": ["SRR0000001", "SRR0000002", "SRR0000003"],
                          "excluded_reason": [None, "not RNA-Seq (ATAC-seq)", None]})
    table.to_parquet(tmp_path / "metadata.parquet")
    df = bs.check_sheet(bs.read_sheet(tmp_path / "metadata.parquet"))
    assert df["sample"].tolist() == ["SRR0000001", "SRR0000003"]


@pytest.mark.parametrize("bad", ["SRR\uff16\uff18\uff13\uff15\uff18\uff14\uff14", "GSE\uff11\uff12", "SRR12345", "PRJNA12x"])
def test_every_row_is_checked_not_the_first_thousand(bad):
    """Row 1002 (the 1001st sample) is checked like row 2, also for non-ASCII digits, which
    pandas' \\d accepts but the downloader's patterns do not."""
    rows = [{"accession": f"SRR{1000000 + i}", "sample": f"s{i}"} for i in range(1000)] + [{"accession": bad, "sample": "last"}]
    with pytest.raises(bs.SampleSheetError, match=r"row 1002: .* is not a valid"):
        bs.check_sheet(sheet(rows))


def test_kinds_of_many_non_run_accessions_are_vectorised():
    df = bs.check_sheet(sheet([{"accession": f"GSM{100000 + i}"} for i in range(50000)] + [{"accession": "SRX1234567"}]))
    assert set(df["kind"][:-1]) == {"geo_sample"} and df["kind"].iloc[-1] == "experiment"
