"""check_fastq on real ENCODE reads and on the ways FASTQ goes wrong."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from bulkfm.sra.fastq import FastqError, check_fastq


@pytest.fixture
def pair(shared_data: Path) -> list[Path]:
    d = shared_data / "encode_chr19_rnaseq"
    return [d / f"ENCSR653DFZ_rep1_chr19_10000reads_R{i}.fastq.gz" for i in (1, 2)]


def test_good_pair_and_single(pair: list[Path], shared_data: Path) -> None:
    st = check_fastq(pair, "ENCSR653DFZ_rep1")
    assert st.paired and st.reads == 10000 and [f.reads for f in st.files] == [10000, 10000]
    assert st.files[0].read_length == 101 and st.files[0].first_name == st.files[1].first_name
    single = check_fastq([shared_data / "encode_chr19_rnaseq" / "rep1_ENCSR510QZW_chr19only_10000_reads.fastq.gz"], "se")
    assert not single.paired and single.reads == 10000


def test_plain_fastq_without_final_newline(tmp_path: Path, pair: list[Path]) -> None:
    text = gzip.decompress(pair[0].read_bytes()).rstrip(b"\n")
    (tmp_path / "a.fq").write_bytes(text)
    assert check_fastq([tmp_path / "a.fq"], "s").reads == 10000


def test_truncated_gzip(tmp_path: Path, pair: list[Path]) -> None:
    data = pair[0].read_bytes()
    (tmp_path / "cut_1.fastq.gz").write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(FastqError, match=r"sample S1: cut_1\.fastq\.gz: gzip stream is truncated.*download the run again"):
        check_fastq([tmp_path / "cut_1.fastq.gz", pair[1]], "S1")


def test_corrupt_gzip(tmp_path: Path, pair: list[Path]) -> None:
    data = bytearray(pair[0].read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 64):
        data[i] ^= 0x5A
    (tmp_path / "bad.fastq.gz").write_bytes(bytes(data))
    with pytest.raises(FastqError, match="truncated or corrupt"):
        check_fastq([tmp_path / "bad.fastq.gz"], "S2")


@pytest.mark.parametrize("content", [b"", gzip.compress(b"")])
def test_empty(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "e.fastq.gz").write_bytes(content)
    with pytest.raises(FastqError, match=r"sample S3: e\.fastq\.gz: (file is empty|contains no reads)"):
        check_fastq([tmp_path / "e.fastq.gz"], "S3")


def test_mismatched_read_counts(tmp_path: Path, pair: list[Path]) -> None:
    lines = gzip.decompress(pair[1].read_bytes()).splitlines(keepends=True)
    (tmp_path / "r2.fq.gz").write_bytes(gzip.compress(b"".join(lines[: 4 * 9990]), compresslevel=1))
    with pytest.raises(FastqError, match=r"mates do not pair: .*10000 reads, r2\.fq\.gz has 9990"):
        check_fastq([pair[0], tmp_path / "r2.fq.gz"], "S4")


def test_mates_from_different_runs(pair: list[Path], shared_data: Path) -> None:
    other = shared_data / "encode_chr19_rnaseq" / "ENCSR653DFZ_rep2_chr19_10000reads_R2.fastq.gz"
    with pytest.raises(FastqError, match="first read names differ"):
        check_fastq([pair[0], other], "S5")


def test_last_names_differ(tmp_path: Path, pair: list[Path]) -> None:
    lines = gzip.decompress(pair[1].read_bytes()).splitlines(keepends=True)
    lines[-4] = b"@SOMETHING_ELSE\n"
    (tmp_path / "r2.fq").write_bytes(b"".join(lines))
    with pytest.raises(FastqError, match="last read names differ"):
        check_fastq([pair[0], tmp_path / "r2.fq"], "S6")


def test_cut_record_and_not_fastq(tmp_path: Path, pair: list[Path]) -> None:
    lines = gzip.decompress(pair[0].read_bytes()).splitlines(keepends=True)
    (tmp_path / "cut.fq").write_bytes(b"".join(lines[:-2]))
    with pytest.raises(FastqError, match="not a multiple of 4"):
        check_fastq([tmp_path / "cut.fq"], "S7")
    (tmp_path / "x.fa").write_bytes(b">tx1\nACGT\n>tx2\nACGT\n")
    with pytest.raises(FastqError, match="malformed FASTQ record"):
        check_fastq([tmp_path / "x.fa"], "S8")
    with pytest.raises(FastqError, match="does not exist"):
        check_fastq([tmp_path / "missing.fq"], "S9")
