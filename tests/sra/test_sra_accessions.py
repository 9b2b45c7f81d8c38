"""Accession parsing: every kind, normalisation, and refusal of anything shell-like."""

from __future__ import annotations

import pytest

from bulkfm.sra.accessions import AccessionError, Kind, classify, is_run, validate_run
from bulkfm.sra.resolve import normalize


@pytest.mark.parametrize(
    "acc, kind",
    [
        ("SRR6835844", Kind.RUN), ("ERR1806248", Kind.RUN), ("DRR000001", Kind.RUN),
        ("SRX3517583", Kind.EXPERIMENT), ("ERX1869275", Kind.EXPERIMENT),
        ("SRS4237519", Kind.SAMPLE), ("ERS1677708", Kind.SAMPLE), ("SAMN10719598", Kind.SAMPLE),
        ("SAMEA103885254", Kind.SAMPLE), ("SAMD00000001", Kind.SAMPLE),
        ("SRP178136", Kind.STUDY), ("ERP113893", Kind.STUDY),
        ("PRJNA514051", Kind.PROJECT), ("PRJEB18997", Kind.PROJECT), ("PRJDB1234", Kind.PROJECT),
        ("GSE93374", Kind.GEO_SERIES), ("GSM3717978", Kind.GEO_SAMPLE),
    ],
)
def test_classify_every_kind(acc: str, kind: Kind) -> None:
    assert classify(acc) is kind
    assert classify(f"  {acc}\n") is kind


@pytest.mark.parametrize(
    "bad",
    ["SRR123; rm -rf /", "$(reboot)", "SRR6835844;", "../SRR6835844", "SRR12", "SRZ1234567",
     "SRR6835844\nSRR6835845", "GSE", "PRJNA", "", "SRR６８３５８４４"],  # full-width digits match \d without re.ASCII
)
def test_rejects_malformed(bad: str) -> None:
    with pytest.raises(AccessionError, match="not a valid"):
        classify(bad)


def test_lowercase_is_strict_in_classify_but_normalized_for_users() -> None:
    with pytest.raises(AccessionError):
        classify("srr6835844")
    # a sample sheet typed in lower case is accepted after upper-casing; duplicates collapse
    assert normalize(["srr6835844", " SRR6835844 ", "gse93374"]) == ["SRR6835844", "GSE93374"]


def test_normalize_reports_all_bad_ones_at_once() -> None:
    with pytest.raises(AccessionError) as err:
        normalize(["SRR6835844", "SRR123; rm -rf /", "hello"])
    msg = str(err.value)
    assert "SRR123; rm -rf /" in msg and "hello" in msg and "sample sheet" in msg


def test_run_helpers() -> None:
    assert is_run("ERR1806248") and not is_run("ERX1869275")
    assert validate_run(" SRR6835844 ") == "SRR6835844"
    with pytest.raises(AccessionError, match="not a run"):
        validate_run("SRP178136")
