"""The ``bulkfm sra`` subcommands end to end (in process), against the replay server."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from sra_replay import ReplayServer

from bulkfm.cli import main
from bulkfm.sra.config import SraConfig


def _config(tmp_path: Path, replay: ReplayServer) -> Path:
    cfg = {"sra": {"retries": 1, "backoff_s": 0.01, "timeout_s": 5, "ncbi_sleep_s": 0,
                   "endpoints": {"eutils": f"{replay.url}/eutils", "ena_portal": f"{replay.url}/ena/portal/api",
                                 "ena_browser": f"{replay.url}/ena/browser/api", "ena_fastq": f"{replay.url}/ena/fastq"}}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_resolve_sheet_to_parquet(tmp_path: Path, replay: ReplayServer, capsys: pytest.CaptureFixture[str]) -> None:
    sheet = tmp_path / "samples.tsv"
    sheet.write_text("sample\taccession\tfastq_1\n"
                     "a\tsrx7830165\t\n"
                     "b\tSRR8426358\t\n"
                     "local\t\t/data/x_1.fq.gz\n")
    out = tmp_path / "results" / "sra" / "metadata.parquet"
    rc = main(["sra", "resolve", "--sheet", str(sheet), "PRJEB18997", "-o", str(out), "--config", str(_config(tmp_path, replay))])
    assert rc == 0
    df = pd.read_parquet(out)
    # 2,226 resolved runs + the local-FASTQ sample, whose metadata comes from the sheet
    assert len(df) == 2227 and (df["excluded_reason"].isna()).sum() == 1269
    remote = df[df["source"] != "sample_sheet"]
    assert set(remote["input_accession"]) == {"SRX7830165", "SRR8426358", "PRJEB18997"}
    local = df[df["source"] == "sample_sheet"].iloc[0]
    assert local["run"] == "local" and local["library_layout"] == "SINGLE"
    assert "2227 runs (1269 kept, 958 excluded)" in capsys.readouterr().err
    rc = main(["sra", "resolve", "SRX7830165", "-o", str(out), "--no-human-filter", "--config", str(_config(tmp_path, replay))])
    assert rc == 0 and pd.read_parquet(out)["excluded_reason"].isna().all()


def test_resolve_errors_exit_2_with_message(tmp_path: Path, replay: ReplayServer, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m.parquet"
    assert main(["sra", "resolve", "SRR123;rm", "-o", str(out)]) == 2
    assert "SRR123;rm" in capsys.readouterr().err
    assert main(["sra", "resolve", "SRR9999999", "-o", str(out), "--config", str(_config(tmp_path, replay))]) == 2
    assert "SRR9999999" in capsys.readouterr().err and not out.exists()


def test_check_and_download(tmp_path: Path, replay: ReplayServer, shared_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    r1, r2 = (shared_data / "encode_chr19_rnaseq" / f"ENCSR653DFZ_rep1_chr19_10000reads_R{i}.fastq.gz" for i in (1, 2))
    js = tmp_path / "stats.json"
    assert main(["sra", "check", str(r1), str(r2), "--sample", "rep1", "--json", str(js)]) == 0
    assert json.loads(js.read_text())["reads"] == 10000
    (tmp_path / "cut.fq.gz").write_bytes(r2.read_bytes()[:5000])
    capsys.readouterr()
    assert main(["sra", "check", str(r1), str(tmp_path / "cut.fq.gz"), "--sample", "rep1"]) == 2
    assert "sample rep1: cut.fq.gz: gzip stream is truncated" in capsys.readouterr().err
    # download through the metadata table's ENA URLs/md5s
    import hashlib

    base = "/vol1/fastq/ERR180/008/ERR1806248"
    urls, md5s = [], []
    for i, f in enumerate((r1, r2), 1):
        replay.files[f"{base}/ERR1806248_{i}.fastq.gz"] = f.read_bytes()
        urls.append(f"ftp.sra.ebi.ac.uk{base}/ERR1806248_{i}.fastq.gz")
        md5s.append(hashlib.md5(f.read_bytes()).hexdigest())
    meta = tmp_path / "metadata.parquet"
    pd.DataFrame({"run": ["ERR1806248"], "fastq_ftp": [";".join(urls)], "fastq_md5": [";".join(md5s)]}).to_parquet(meta)
    rc = main(["sra", "download", "ERR1806248", "-o", str(tmp_path / "fq"), "--method", "ena", "--metadata", str(meta),
               "--config", str(_config(tmp_path, replay))])
    assert rc == 0
    assert capsys.readouterr().out.split() == [str(tmp_path / "fq" / f"ERR1806248_{i}.fastq.gz") for i in (1, 2)]
    assert main(["sra", "download", "SRP251352", "-o", str(tmp_path / "fq")]) == 2
    assert "not a run" in capsys.readouterr().err


def test_config_block_defaults_and_unknown_keys(tmp_path: Path) -> None:
    cfg = SraConfig()
    assert cfg["human_rnaseq_only"] is True and cfg.run_filter is not None and cfg.retry.retries == 4
    assert SraConfig.from_mapping({"sra": {"human_rnaseq_only": False}}).run_filter is None
    with pytest.raises(ValueError, match=r"sra\.retrys \(did you mean sra\.retries\?\)"):
        SraConfig.from_mapping({"retrys": 3})
    with pytest.raises(ValueError, match=r"unknown config key sra\.endpoints\.ncbi"):
        SraConfig.from_mapping({"endpoints": {"ncbi": "http://x"}})
