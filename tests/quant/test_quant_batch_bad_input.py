"""Bad input in a batch: each bad sample is listed with its reason, good samples still finish,
nothing half-written is left; a tx2gene from another reference stops the job."""

from __future__ import annotations

import gzip
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
EX = REPO / "resources" / "example"
FA = EX / "Homo_sapiens.GRCh38.cdna.all.chr19_ERCC_phix.fa.gz"
BULKFM = str(Path(sys.executable).with_name("bulkfm"))


@pytest.fixture(scope="module")
def small_reference(tmp_path_factory):
    """A real salmon index over a 400-transcript slice of the bundled chr19 transcriptome."""
    d = tmp_path_factory.mktemp("ref")
    with gzip.open(FA, "rt") as fh, open(d / "tx.fa", "w") as out:
        n = 0
        for line in fh:
            if line.startswith(">"):
                n += 1
                if n > 400:
                    break
            out.write(line)
    subprocess.run([BULKFM, "quant", "index", "--transcripts", str(d / "tx.fa"), "-o", str(d / "idx")], check=True)
    subprocess.run([BULKFM, "quant", "genes", "--transcripts", str(d / "tx.fa"), "-o", str(d / "ref")], check=True)
    return d


def run_batch(ref: Path, tmp: Path, rows: list[str], *extra: str) -> subprocess.CompletedProcess:
    (tmp / "sheet.tsv").write_text("sample\tfastq_1\tfastq_2\n" + "\n".join(rows) + "\n")
    return subprocess.run([BULKFM, "quant", "batch", "--sheet", str(tmp / "sheet.tsv"), "--batch", "b00000",
                           "--batch-size", "100", "--index", str(ref / "idx"), "--reference", str(ref / "ref"),
                           "--outdir", str(tmp / "quant"), "-o", str(tmp / "b.tsv"), "--min-mapping-rate", "0",
                           *extra], capture_output=True, text=True)


def test_bad_samples_are_listed_with_reasons_and_good_ones_finish(small_reference, tmp_path):
    r1 = EX / "reads" / "ENCSR653DFZ_rep1_chr19_10000reads_R1.fastq.gz"
    r2 = EX / "reads" / "ENCSR653DFZ_rep1_chr19_10000reads_R2.fastq.gz"
    other_r2 = EX / "reads" / "ENCSR142YZV_chr19only_10000_reads_R2.fastq.gz"
    truncated = tmp_path / "trunc_R1.fastq.gz"
    truncated.write_bytes(r1.read_bytes()[: 200_000])
    empty = tmp_path / "empty.fastq.gz"
    with gzip.open(empty, "wb"):
        pass
    # copies: the sheet check refuses one FASTQ file under two sample names
    r2_copy, r1_copy = tmp_path / "copy_R2.fastq.gz", tmp_path / "copy_R1.fastq.gz"
    shutil.copyfile(r2, r2_copy)
    shutil.copyfile(r1, r1_copy)
    rows = [f"good\t{r1}\t{r2}", f"truncated\t{truncated}\t{r2_copy}", f"empty\t{empty}\t",
            f"mismatched\t{r1_copy}\t{other_r2}", f"missing\t{tmp_path / 'nope.fq.gz'}\t"]
    proc = run_batch(small_reference, tmp_path, rows)
    assert proc.returncode == 0, proc.stderr
    table = pd.read_csv(tmp_path / "b.tsv", sep="\t").set_index("sample")
    assert table.loc["good", "status"] in ("pass", "fail_qc")
    for bad in ("truncated", "empty", "mismatched", "missing"):
        assert table.loc[bad, "status"] == "error", bad
        assert bad in proc.stderr  # the log names the sample
    assert "does not exist" in table.loc["missing", "reason"]
    # Nothing half-written: only the good sample has a directory.
    assert sorted(p.name for p in (tmp_path / "quant" / "samples").iterdir()) == ["good"]


def test_on_error_fail_stops_the_job(small_reference, tmp_path):
    empty = tmp_path / "empty.fastq"
    empty.write_text("")
    proc = run_batch(small_reference, tmp_path, [f"empty\t{empty}\t"], "--on-error", "fail")
    assert proc.returncode != 0
    assert "empty" in proc.stderr
    assert not (tmp_path / "b.tsv").exists()


def test_salmon_failure_names_the_sample(small_reference, tmp_path):
    bad_index = tmp_path / "idx"
    shutil.copytree(small_reference / "idx", bad_index)
    for f in bad_index.glob("*.bin"):
        f.write_bytes(b"garbage")
    r1 = EX / "reads" / "rep1_ENCSR510QZW_chr19only_10000_reads.fastq.gz"
    (tmp_path / "sheet.tsv").write_text(f"sample\tfastq_1\tfastq_2\nse1\t{r1}\t\n")
    proc = subprocess.run([BULKFM, "quant", "batch", "--sheet", str(tmp_path / "sheet.tsv"), "--batch", "b00000",
                           "--batch-size", "10", "--index", str(bad_index), "--reference", str(small_reference / "ref"),
                           "--outdir", str(tmp_path / "quant"), "-o", str(tmp_path / "b.tsv")],
                          capture_output=True, text=True)
    table = pd.read_csv(tmp_path / "b.tsv", sep="\t")
    assert table.loc[0, "status"] == "error"
    assert "salmon quant for sample se1 failed" in table.loc[0, "reason"]


def test_tx2gene_from_another_reference_stops_the_batch(small_reference, tmp_path):
    ref = tmp_path / "ref"
    shutil.copytree(small_reference / "ref", ref)
    tx = pd.read_parquet(ref / "tx2gene.parquet")
    tx["transcript_id"] = "NM_" + tx.index.astype(str)
    tx.to_parquet(ref / "tx2gene.parquet")
    r1 = EX / "reads" / "rep1_ENCSR510QZW_chr19only_10000_reads.fastq.gz"
    (tmp_path / "sheet.tsv").write_text(f"sample\tfastq_1\tfastq_2\nse1\t{r1}\t\n")
    proc = subprocess.run([BULKFM, "quant", "batch", "--sheet", str(tmp_path / "sheet.tsv"), "--batch", "b00000",
                           "--batch-size", "10", "--index", str(small_reference / "idx"), "--reference", str(ref),
                           "--outdir", str(tmp_path / "quant"), "-o", str(tmp_path / "b.tsv"), "--min-mapping-rate", "0"],
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert "does not match the salmon index" in proc.stderr
    assert not (tmp_path / "b.tsv").exists()
