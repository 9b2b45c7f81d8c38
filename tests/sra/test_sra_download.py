"""fetch_fastq: ENA over HTTP from the 127.0.0.1 server (md5, resume, retries) and real
sra-tools (fasterq-dump) on .sra files built from real ENCODE reads with latf-load + kar."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from sra_replay import ReplayServer

from bulkfm.sra.download import DownloadError, fetch_fastq, https_url, manifest_path, select_mates
from bulkfm.sra.fastq import check_fastq
from bulkfm.sra.net import Endpoints

RUN = "ERR1806248"
ENA_DIR = "/vol1/fastq/ERR180/008/ERR1806248"


@pytest.fixture
def ena_pair(replay: ReplayServer, shared_data: Path) -> tuple[list[str], list[str], list[bytes]]:
    d = shared_data / "encode_chr19_rnaseq"
    data = [(d / f"ENCSR653DFZ_rep1_chr19_10000reads_R{i}.fastq.gz").read_bytes() for i in (1, 2)]
    urls, md5s = [], []
    for i, body in enumerate(data, 1):
        replay.files[f"{ENA_DIR}/{RUN}_{i}.fastq.gz"] = body
        urls.append(f"ftp.sra.ebi.ac.uk{ENA_DIR}/{RUN}_{i}.fastq.gz")
        md5s.append(hashlib.md5(body).hexdigest())
    return urls, md5s, data


def _fetch(tmp_path: Path, endpoints: Endpoints, **kw: object) -> list[Path]:
    kw.setdefault("retries", 2)
    return fetch_fastq(RUN, tmp_path / "fastq", method="ena", endpoints=endpoints, backoff_s=0.01, timeout_s=5, **kw)  # type: ignore[arg-type]


def test_ena_download_md5_ok_and_rerun_is_a_noop(tmp_path: Path, replay: ReplayServer, endpoints: Endpoints, ena_pair) -> None:  # type: ignore[no-untyped-def]
    urls, md5s, data = ena_pair
    files = _fetch(tmp_path, endpoints, ena_urls=urls, md5s=md5s)
    assert [f.name for f in files] == [f"{RUN}_1.fastq.gz", f"{RUN}_2.fastq.gz"]
    assert [f.read_bytes() for f in files] == data
    assert check_fastq(files, RUN).reads == 10000
    m = json.loads(manifest_path(RUN, tmp_path / "fastq").read_text())
    assert m["method"] == "ena" and m["layout"] == "PAIRED"
    assert sorted(p.name for p in (tmp_path / "fastq").iterdir()) == [f"{RUN}.manifest.json", *[f.name for f in files]]
    n = replay.count("/ena/fastq/")
    assert _fetch(tmp_path, endpoints, ena_urls=urls, md5s=md5s) == files
    assert replay.count("/ena/fastq/") == n  # complete run: nothing fetched again


def test_md5_mismatch_once_is_deleted_and_retried(tmp_path: Path, replay: ReplayServer, endpoints: Endpoints, ena_pair) -> None:  # type: ignore[no-untyped-def]
    urls, md5s, data = ena_pair
    replay.faults[f"/ena/fastq{ENA_DIR}/{RUN}_2"] = ["flip:1000"]
    files = _fetch(tmp_path, endpoints, ena_urls=urls, md5s=md5s)
    assert files[1].read_bytes() == data[1] and replay.count(f"/ena/fastq{ENA_DIR}/{RUN}_2") == 2


def test_wrong_md5_gives_up_with_a_clear_error_and_no_output(tmp_path: Path, replay: ReplayServer, endpoints: Endpoints, ena_pair) -> None:  # type: ignore[no-untyped-def]
    urls, md5s, _ = ena_pair
    with pytest.raises(DownloadError) as err:
        _fetch(tmp_path, endpoints, ena_urls=urls, md5s=[md5s[0], "0" * 32])
    msg = str(err.value)
    assert RUN in msg and "md5 mismatch" in msg and "sra-tools" in msg
    assert replay.count(f"/ena/fastq{ENA_DIR}/{RUN}_2") == 3  # 1 + 2 retries
    assert not list((tmp_path / "fastq").glob("*.fastq*"))  # nothing that looks complete


def test_cut_connection_resumes_with_range(tmp_path: Path, replay: ReplayServer, endpoints: Endpoints, ena_pair) -> None:  # type: ignore[no-untyped-def]
    urls, md5s, data = ena_pair
    replay.faults[f"/ena/fastq{ENA_DIR}/{RUN}_1"] = ["cut:300000", "cut:200000"]
    files = _fetch(tmp_path, endpoints, ena_urls=urls, md5s=md5s)
    assert files[0].read_bytes() == data[0]
    assert replay.ranges[:3] == [None, "bytes=300000-", "bytes=500000-"]


def test_crash_mid_file_then_rerun_resumes(tmp_path: Path, replay: ReplayServer, endpoints: Endpoints, ena_pair) -> None:  # type: ignore[no-untyped-def]
    urls, md5s, data = ena_pair
    replay.faults[f"/ena/fastq{ENA_DIR}/{RUN}_1"] = ["cut:400000"]
    with pytest.raises(DownloadError, match=RUN):
        _fetch(tmp_path, endpoints, ena_urls=urls, md5s=md5s, retries=0)
    dest = tmp_path / "fastq"
    assert not list(dest.glob("*.fastq*")) and not manifest_path(RUN, dest).exists()
    assert (dest / f".{RUN}.partial" / f"{RUN}_1.fastq.gz.part").stat().st_size == 400000
    files = _fetch(tmp_path, endpoints, ena_urls=urls, md5s=md5s)
    assert [f.read_bytes() for f in files] == data
    assert "bytes=400000-" in replay.ranges and not (dest / f".{RUN}.partial").exists()


def test_server_without_range_restarts_from_zero(tmp_path: Path, replay: ReplayServer, endpoints: Endpoints, ena_pair) -> None:  # type: ignore[no-untyped-def]
    urls, md5s, data = ena_pair
    replay.range_support = False
    replay.faults[f"/ena/fastq{ENA_DIR}/{RUN}_1"] = ["cut:300000"]
    files = _fetch(tmp_path, endpoints, ena_urls=urls, md5s=md5s)
    assert files[0].read_bytes() == data[0]


def test_refuses_urls_outside_ena(tmp_path: Path, endpoints: Endpoints) -> None:
    for bad in ("http://evil.example/ERR1806248_1.fastq.gz", "ftp.sra.ebi.ac.uk/vol1/../../etc/ERR1806248_1.fastq.gz",
                "ftp.sra.ebi.ac.uk/vol1/x y/ERR1806248_1.fastq.gz"):
        with pytest.raises(DownloadError, match="refusing"):
            _fetch(tmp_path, endpoints, ena_urls=[bad])


def test_select_mates_and_url_mapping(endpoints: Endpoints) -> None:
    base = "ftp.sra.ebi.ac.uk/vol1/fastq/SRR842/008/SRR8426358/SRR8426358"
    # paired run with unpaired reads: ENA lists RUN.fastq.gz too; only _1/_2 are used
    targets, sums = select_mates("SRR8426358", [f"{base}.fastq.gz", f"{base}_1.fastq.gz", f"{base}_2.fastq.gz"], ["a", "b", "c"])
    assert [n for _, n in targets] == ["SRR8426358_1.fastq.gz", "SRR8426358_2.fastq.gz"] and sums == ["b", "c"]
    targets, sums = select_mates("SRR8426358", [f"{base}.fastq.gz"], None)
    assert [n for _, n in targets] == ["SRR8426358.fastq.gz"] and sums == [None]
    with pytest.raises(DownloadError, match="md5"):
        select_mates("SRR8426358", [f"{base}_1.fastq.gz", f"{base}_2.fastq.gz"], ["a"])
    assert https_url(f"ftp://{base}_1.fastq.gz", endpoints) == endpoints.ena_fastq + base[len("ftp.sra.ebi.ac.uk"):] + "_1.fastq.gz"
    assert https_url(f"{base}_1.fastq.gz", Endpoints()).startswith("https://ftp.sra.ebi.ac.uk/vol1/fastq/SRR842/")


def test_urls_looked_up_in_filereport(tmp_path: Path, replay: ReplayServer, endpoints: Endpoints) -> None:
    # real filereport for SRR8426358 lists its two FASTQ files; the bytes are not here -> 404
    with pytest.raises(DownloadError, match=r"SRR8426358_1\.fastq\.gz.*404"):
        fetch_fastq("SRR8426358", tmp_path, method="ena", endpoints=endpoints, retries=0, backoff_s=0.01)
    assert any(p.get("accession") == "SRR8426358" for _, _, p in replay.log)


# ---- sra-tools -------------------------------------------------------------------------------

needs_sra_tools = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("latf-load", "kar", "fasterq-dump", "prefetch")),
    reason="sra-tools (latf-load, kar, fasterq-dump, prefetch) not installed",
)


def _reads(path: Path, n: int, mate: int | None) -> list[bytes]:
    with gzip.open(path, "rb") as fh:
        lines = [next(fh) for _ in range(4 * n)]
    if mate:  # latf-load pairs mates by /1 /2 name suffixes
        lines = [ln.split()[0] + b"/%d\n" % mate if i % 4 == 0 else ln for i, ln in enumerate(lines)]
    return lines


def make_sra(tmp: Path, acc: str, fastqs: list[list[bytes]]) -> Path:
    """A real .sra archive from FASTQ records (TOOLCHAIN.md §1)."""
    srcs = []
    for i, lines in enumerate(fastqs, 1):
        p = tmp / f"{acc}_in_{i}.fq"
        p.write_bytes(b"".join(lines))
        srcs.append(str(p))
    subprocess.run(["latf-load", "-p", "ILLUMINA", "--quality", "PHRED_33", "-o", str(tmp / acc), *srcs],
                   check=True, capture_output=True)
    sra = tmp / f"{acc}.sra"
    subprocess.run(["kar", "--create", str(sra), "-d", str(tmp / acc)], check=True, capture_output=True)
    return sra


@pytest.fixture
def sra_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"  # keep sra-tools' user config out of the real HOME
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


def _seqs(lines: list[bytes]) -> list[bytes]:
    return [ln.strip() for ln in lines[1::4]]


@needs_sra_tools
def test_fasterq_dump_paired_single_and_unpaired(tmp_path: Path, shared_data: Path, sra_home: Path) -> None:
    d = shared_data / "encode_chr19_rnaseq"
    r1 = _reads(d / "ENCSR653DFZ_rep1_chr19_10000reads_R1.fastq.gz", 2000, 1)
    r2 = _reads(d / "ENCSR653DFZ_rep1_chr19_10000reads_R2.fastq.gz", 2000, 2)
    # paired
    sra = make_sra(tmp_path, "SRR0000001", [r1, r2])
    files = fetch_fastq("SRR0000001", tmp_path / "out", method="sra-tools", sra_path=sra, threads=2)
    assert [f.name for f in files] == ["SRR0000001_1.fastq", "SRR0000001_2.fastq"]
    stats = check_fastq(files, "SRR0000001")
    assert stats.paired and stats.reads == 2000
    assert _seqs(files[0].read_bytes().splitlines(keepends=True)) == _seqs(r1)  # sequences round-trip
    assert _seqs(files[1].read_bytes().splitlines(keepends=True)) == _seqs(r2)
    # 25 reads lose their mate: fasterq-dump --split-3 writes them to a third file, which is dropped
    sra = make_sra(tmp_path, "SRR0000002", [r1, r2[: 4 * 1975]])
    files = fetch_fastq("SRR0000002", tmp_path / "out", method="sra-tools", sra_path=sra)
    assert [f.name for f in files] == ["SRR0000002_1.fastq", "SRR0000002_2.fastq"]
    assert check_fastq(files, "SRR0000002").reads == 1975
    m = json.loads(manifest_path("SRR0000002", tmp_path / "out").read_text())
    assert m["dropped_unpaired_reads"] == 25 and not (tmp_path / "out" / "SRR0000002.fastq").exists()
    # single-end (real single-end ENCODE reads)
    # this real file repeats some read names, which latf-load refuses: keep first occurrences
    lines = _reads(d / "rep1_ENCSR510QZW_chr19only_10000_reads.fastq.gz", 2000, None)
    seen: set[bytes] = set()
    s: list[bytes] = []
    for i in range(0, len(lines), 4):
        if lines[i].split()[0] not in seen:
            seen.add(lines[i].split()[0])
            s += lines[i : i + 4]
    s = s[: 4 * 1500]
    sra = make_sra(tmp_path, "SRR0000003", [s]).rename(tmp_path / "my upload.sra")  # any file name works
    files = fetch_fastq("SRR0000003", tmp_path / "out", method="sra-tools", sra_path=sra)
    assert [f.name for f in files] == ["SRR0000003.fastq"]
    assert check_fastq(files, "SRR0000003").reads == 1500 and not check_fastq(files, "x").paired


@needs_sra_tools
def test_auto_falls_back_to_prefetch_and_reports_both(tmp_path: Path, replay: ReplayServer, endpoints: Endpoints, sra_home: Path) -> None:
    # ENA knows nothing about this run (404) -> sra-tools; prefetch cannot fetch it here -> clear error
    with pytest.raises(DownloadError) as err:
        fetch_fastq("SRR0000009", tmp_path, method="auto", endpoints=endpoints, retries=0, backoff_s=0.01)
    msg = str(err.value)
    assert "SRR0000009" in msg and "prefetch" in msg and "exited" in msg
    assert not list(tmp_path.glob("SRR0000009*"))


def test_refused_connection_fails_at_once(tmp_path: Path, ena_pair, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    """Nothing listens (closed port on 127.0.0.1): one attempt, no 'resuming' loop, the reason named."""
    urls, md5s, _ = ena_pair
    caplog.set_level("WARNING", logger="bulkfm.sra")
    with pytest.raises(DownloadError) as err:
        _fetch(tmp_path, Endpoints.local("http://127.0.0.1:9"), ena_urls=urls, md5s=md5s, retries=4)
    assert RUN in str(err.value) and "connection refused" in str(err.value) and "not retried" in str(err.value)
    assert "resuming" not in caplog.text
