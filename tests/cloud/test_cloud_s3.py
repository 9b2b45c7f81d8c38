"""Object storage for real: the workflow's own rule reads its inputs from and writes its
(directory) output to an S3 bucket on a local S3 server (moto, 127.0.0.1), through
`--default-storage-provider s3`; then the kubernetes profile's storage settings plan against the
same bucket and find nothing to redo."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

boto3 = pytest.importorskip("boto3", reason="pip install -e '.[cloud]' for the S3 storage test")
moto_server = pytest.importorskip("moto.server", reason="pip install -e '.[cloud]' (moto[server])")
pytest.importorskip("snakemake_storage_plugin_s3", reason="pip install -e '.[cloud]'")

REPO = Path(__file__).resolve().parents[2]
INPUTS = [
    "resources/example/Homo_sapiens.GRCh38.cdna.all.chr19_ERCC_phix.fa.gz",
    "resources/example/tx2gene_chr19.tsv.gz",
    "resources/example/genes_gencode_v48_chr19.tsv.gz",
]
KEYS = {"AWS_ACCESS_KEY_ID": "bulkfm-test", "AWS_SECRET_ACCESS_KEY": "bulkfm-test-secret",
        "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture()
def s3(monkeypatch):
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    for k, v in KEYS.items():
        monkeypatch.setenv(k, v)
    url = f"http://{host}:{port}"
    client = boto3.client("s3", endpoint_url=url)
    client.create_bucket(Bucket="bulkfm")
    yield url, client
    server.stop()


def snakemake(*args: str, env: dict) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("snakemake")
    proc = subprocess.run([str(exe), *args], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env, "PATH": f"{exe.parent}:{os.environ['PATH']}"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_rule_through_s3_storage(s3, tmp_path):
    url, client = s3
    for f in INPUTS:
        client.upload_file(str(REPO / f), "bulkfm", f"run/{f}")
    out = "results_s3test"
    storage = ["--default-storage-provider", "s3", "--default-storage-prefix", "s3://bulkfm/run",
               "--storage-s3-endpoint-url", url, "--local-storage-prefix", str(tmp_path / "cache"),
               "--config", f"outdir={out}", "--", f"{out}/reference/genes"]
    proc = snakemake("--cores", "1", *storage, env=KEYS)
    text = proc.stdout + proc.stderr
    assert "Retrieving from storage: s3://bulkfm/run/resources/example/tx2gene_chr19.tsv.gz" in text
    assert f"Storing in storage: s3://bulkfm/run/{out}/reference/genes" in text
    assert not (REPO / out).exists()  # nothing written beside the checkout: it all went to the bucket

    keys = {o["Key"] for o in client.list_objects_v2(Bucket="bulkfm")["Contents"]}
    assert {f"run/{out}/reference/genes/genes.parquet", f"run/{out}/reference/genes/tx2gene.parquet",
            f"run/{out}/logs/reference_genes.log"} <= keys

    # The bucket's table equals the same command run locally.
    client.download_file("bulkfm", f"run/{out}/reference/genes/genes.parquet", str(tmp_path / "s3.parquet"))
    subprocess.run([str(Path(sys.executable).with_name("bulkfm")), "quant", "genes", "--transcripts", INPUTS[0],
                    "--tx2gene", INPUTS[1], "--gene-table", INPUTS[2], "-o", str(tmp_path / "local")],
                   cwd=REPO, check=True, capture_output=True)
    remote = pd.read_parquet(tmp_path / "s3.parquet")
    local = pd.read_parquet(tmp_path / "local" / "genes.parquet")
    assert len(remote) > 1000
    pd.testing.assert_frame_equal(remote, local)

    # Rerun semantics hold in storage (modification times of the objects), and the kubernetes
    # profile's storage settings, pointed at this bucket, plan the same: nothing to do.
    again = snakemake("-n", "--profile", "profiles/kubernetes", *storage, env=KEYS)
    assert "Nothing to be done" in again.stdout + again.stderr
