"""resolve() against a 127.0.0.1 server replaying real recorded NCBI/ENA responses."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from sra_replay import ReplayServer

from bulkfm.sra.accessions import AccessionError
from bulkfm.sra.net import Endpoints, NetworkError, RetryPolicy
from bulkfm.sra.resolve import COLUMNS, ResolveError, read_metadata, resolve, write_metadata


def _resolve(accs: list[str], endpoints: Endpoints, retry: RetryPolicy, **kw: object) -> pd.DataFrame:
    return resolve(accs, endpoints=endpoints, retry=retry, ncbi_sleep_s=0, progress=False, **kw)  # type: ignore[arg-type]


def test_srp_via_ncbi_pysradb_keeps_only_its_own_packages(replay: ReplayServer, endpoints: Endpoints, fast_retry: RetryPolicy) -> None:
    df = _resolve(["SRP251352"], endpoints, fast_retry)
    # the recorded efetch body holds 87 experiments from 10 studies; only SRP251352's 12 runs stay
    assert len(df) == 12 and set(df["study"]) == {"SRP251352"}
    assert set(df["bioproject"]) == {"PRJNA609901"} and (df["source"] == "ncbi").all()
    row = df.set_index("run").loc["SRR11217925"]
    assert row["experiment"] == "SRX7830165" and row["sample"] == "SRS6240844"
    assert row["biosample"] == "SAMN14262094" and row["geo_sample"] == "GSM4369051"
    assert row["library_layout"] == "SINGLE" and row["library_source"] == "TRANSCRIPTOMIC"
    assert row["instrument"] == "Illumina HiSeq 2000" and row["platform"] == "ILLUMINA"
    assert row["read_count"] == 29156586 and row["base_count"] == 1472955019
    assert json.loads(row["attributes"]) == {
        "source_name": "Whole animal", "datapipeline": "Pipeline2", "temperature": "27", "genotype": "noNSUN"
    }
    # C. elegans is excluded, explicitly, with the reason
    assert df["excluded_reason"].str.contains(r"Caenorhabditis elegans \(taxon 6239\)").all()
    assert replay.count("/eutils/esearch.fcgi") == 1 and replay.count("/eutils/efetch.fcgi") == 1


def test_run_and_experiment_via_ncbi(endpoints: Endpoints, fast_retry: RetryPolicy) -> None:
    df = _resolve(["srr11217925", "SRX7830165", "SRX7830154"], endpoints, fast_retry, human_rnaseq_only=False)
    assert list(df["run"]) == ["SRR11217914", "SRR11217925"]
    assert df.set_index("run").loc["SRR11217925", "input_accession"] == "SRR11217925"  # first one wins
    assert df["excluded_reason"].isna().all()


def test_srr_via_ena_filereport_and_browser_xml(replay: ReplayServer, endpoints: Endpoints, fast_retry: RetryPolicy) -> None:
    # NCBI has no recorded answer for SRR8426358 (esearch count 0) -> ENA: the recorded filereport
    # (URLs + md5s) and the ffq RUN/SAMPLE/STUDY XML records fill the row.
    df = _resolve(["SRR8426358"], endpoints, fast_retry)
    assert replay.count("/eutils/esearch.fcgi") == 1  # NCBI was asked first
    r = df.iloc[0]
    assert (r["run"], r["experiment"], r["sample"], r["biosample"]) == ("SRR8426358", "SRX5234128", "SRS4237519", "SAMN10719598")
    assert (r["study"], r["bioproject"], r["geo_sample"]) == ("SRP178136", "PRJNA514051", "GSM3557675")
    assert r["organism"] == "Mus musculus" and r["taxon_id"] == 10090 and r["source"] == "ena"
    assert r["read_count"] == 109256158 and r["base_count"] == 21984096610
    assert r["fastq_md5"] == "be7e88cf6f6fd90f1b1170f1cb367123;2124da22644d876c4caa92ffd9e2402e"
    assert r["fastq_ftp"].endswith("SRR8426358_2.fastq.gz")
    attrs = json.loads(r["attributes"])
    assert attrs["tissue"] == "Whole lung" and attrs["age"] == "24 months" and "ENA-SPOT-COUNT" not in attrs
    assert "Mus musculus (taxon 10090) is not taxon 9606" in r["excluded_reason"]


def test_human_experiment_via_ena_xml(endpoints: Endpoints, fast_retry: RetryPolicy) -> None:
    df = _resolve(["SRX3517583"], endpoints, fast_retry)
    r = df.iloc[0]
    assert (r["run"], r["study"], r["sample"], r["geo_sample"]) == ("SRR6425163", "SRP127624", "SRS2792433", "GSM2905292")
    assert (r["library_strategy"], r["library_source"], r["library_layout"], r["instrument"]) == (
        "RNA-Seq", "TRANSCRIPTOMIC", "PAIRED", "HiSeq X Ten")
    # its SAMPLE record was not recorded, so the organism is unknown: excluded, and it says why
    assert r["excluded_reason"] == "organism not reported (need taxon 9606)"


def test_ena_fallback_when_ncbi_fails_prjeb18997(replay: ReplayServer, endpoints: Endpoints, fast_retry: RetryPolicy) -> None:
    replay.faults["/eutils/"] = ["500"] * 50  # NCBI down
    df = _resolve(["PRJEB18997"], endpoints, fast_retry)
    assert replay.count("/eutils/esearch.fcgi") == fast_retry.retries + 1
    assert len(df) == 2224 and df["run"].is_unique and (df["source"] == "ena").all()
    assert set(df["taxon_id"]) == {9606} and set(df["bioproject"]) == {"PRJEB18997"}
    kept = df[df["excluded_reason"].isna()]
    assert len(kept) == 1268 and set(kept["library_strategy"]) == {"RNA-Seq"}
    excluded = df[df["excluded_reason"].notna()]
    assert len(excluded) == 956 and set(excluded["library_strategy"]) == {"ATAC-seq"}
    assert set(excluded["excluded_reason"]) == {"library_strategy 'ATAC-seq' not in allowed ['RNA-Seq']"}
    assert kept["sample"].str.startswith("ERS").all() and kept["biosample"].str.startswith("SAMEA").all()


def test_gse_via_geo_esearch_esummary(replay: ReplayServer, endpoints: Endpoints, fast_retry: RetryPolicy) -> None:
    df = _resolve(["GSE93374"], endpoints, fast_retry, human_rnaseq_only=False)
    # real GEO esummary -> SRP096361 -> its recorded ENA STUDY record lists SRR5164436-SRR5164446
    assert list(df["run"]) == [f"SRR51644{i}" for i in range(36, 47)]
    assert set(df["study"]) == {"SRP096361"} and set(df["bioproject"]) == {"PRJNA360829"}
    assert set(df["input_accession"]) == {"GSE93374"}
    esearch = [p for m, path, p in replay.log if path == "/eutils/esearch.fcgi" and p.get("db") == "gds"]
    assert esearch[0]["term"] == "GSE93374[GEO Accession]"


def test_gsm_to_experiment(endpoints: Endpoints, fast_retry: RetryPolicy) -> None:
    df = _resolve(["GSM3717978"], endpoints, fast_retry, human_rnaseq_only=False)
    assert set(df["experiment"]) == {"SRX5692097"} and set(df["geo_sample"]) == {"GSM3717978"}
    assert set(df["study"]) == {"SRP192693"} and set(df["bioproject"]) == {"PRJNA532356"}
    assert list(df["run"]) == ["SRR8906271", "SRR8906272", "SRR8906273", "SRR8906274"]  # ENA-RUN range expanded


def test_unknown_accession_is_a_clear_error(endpoints: Endpoints, fast_retry: RetryPolicy) -> None:
    with pytest.raises(ResolveError, match=r"SRR9999999.*typos"):
        _resolve(["SRR11217925", "SRR9999999"], endpoints, fast_retry)
    with pytest.raises(AccessionError, match="SRR123; rm -rf /"):
        _resolve(["SRR123; rm -rf /"], endpoints, fast_retry)


def test_retry_after_dropped_connection_and_500(replay: ReplayServer, endpoints: Endpoints, fast_retry: RetryPolicy) -> None:
    replay.faults["/eutils/esearch.fcgi"] = ["close"]
    replay.faults["/eutils/efetch.fcgi"] = ["500"]
    df = _resolve(["SRX7830165"], endpoints, fast_retry)
    assert list(df["run"]) == ["SRR11217925"] and df["source"].iloc[0] == "ncbi"
    assert replay.count("/eutils/esearch.fcgi") == 3  # closed, then ok; ok again after efetch's 500
    assert replay.count("/eutils/efetch.fcgi") == 2


def test_cut_body_is_retried(replay: ReplayServer, endpoints: Endpoints, fast_retry: RetryPolicy) -> None:
    replay.faults["/ena/portal/api/filereport"] = ["cut:5000"]
    df = _resolve(["PRJEB18997"], endpoints, fast_retry, sources=("ena",), ena_xml=False)
    assert len(df) == 2224 and replay.count("/ena/portal/api/filereport") == 2


def test_always_failing_network_names_accession_and_fix(replay: ReplayServer, endpoints: Endpoints, fast_retry: RetryPolicy) -> None:
    replay.faults["/"] = ["close"] * 100
    with pytest.raises(NetworkError) as err:
        _resolve(["SRP251352"], endpoints, fast_retry)
    msg = str(err.value)
    assert "SRP251352" in msg and "NCBI" in msg and "ENA" in msg and "proxy" in msg


@pytest.mark.parametrize(("base", "reason"), [
    ("http://127.0.0.1:9", "connection refused"),  # discard port: nothing listens
    ("http://bulkfm-no-such-host.invalid", "host name does not resolve"),  # RFC 2606: never resolves
])
def test_unreachable_host_fails_fast(base: str, reason: str, caplog: pytest.LogCaptureFixture) -> None:
    """DNS failure / refused connection: one attempt per source, no backoff (the default policy
    would wait 2+4+8+16 s per source), and the error says why and that it was not retried."""
    caplog.set_level("WARNING", logger="bulkfm.sra")
    with pytest.raises(NetworkError, match="SRR11217925") as err:
        _resolve(["SRR11217925"], Endpoints.local(base), RetryPolicy())  # the shipped retry defaults
    assert reason in str(err.value) and "not retried" in str(err.value)
    assert not [r for r in caplog.records if "retry" in r.getMessage()], caplog.text


def test_metadata_parquet_roundtrip(tmp_path: Path, endpoints: Endpoints, fast_retry: RetryPolicy) -> None:
    df = _resolve(["SRP251352", "SRR8426358"], endpoints, fast_retry)
    out = write_metadata(df, tmp_path / "sra" / "metadata.parquet")
    back = read_metadata(out)
    assert tuple(back.columns) == COLUMNS and len(back) == 13
    assert str(back["read_count"].dtype) == "Int64" and back["run"].is_unique
    assert not any(p.name.startswith(".") for p in out.parent.iterdir())  # no temp left behind


def test_rerun_after_network_failure_uses_cache(tmp_path: Path, replay: ReplayServer, endpoints: Endpoints, fast_retry: RetryPolicy) -> None:
    cache = tmp_path / "cache"
    replay.faults["/ena/portal/api/filereport?accession=PRJEB18997"] = ["close"] * 10  # ENA down for it
    with pytest.raises(NetworkError, match="PRJEB18997"):
        _resolve(["SRX7830165", "PRJEB18997"], endpoints, fast_retry, cache_dir=cache)
    assert (cache / "SRX7830165.json").exists() and not (cache / "PRJEB18997.json").exists()
    replay.faults.clear()
    replay.log.clear()
    df = _resolve(["SRX7830165", "PRJEB18997"], endpoints, fast_retry, cache_dir=cache)
    assert len(df) == 2225 and (cache / "PRJEB18997.json").exists()
    assert replay.log and not any("SRX7830165" in json.dumps(p) for _, _, p in replay.log)  # not asked again
    replay.log.clear()
    again = _resolve(["SRX7830165", "PRJEB18997"], endpoints, fast_retry, cache_dir=cache)
    assert replay.log == [] and again.equals(df)  # everything from the cache, same table
