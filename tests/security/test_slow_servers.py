"""A server that sends a byte at a time cannot hold bulkfm past its timeouts (issue 16, item 3).

Every HTTP client is run for real against a local 127.0.0.1 server that drips its answer (body,
or even the status line and headers) one byte every 50 ms, far slower than any per-read timeout
would notice: the SRA/ENA/NCBI requests (total deadline per request), the FASTQ download (a
stalled transfer is cut and resumed), the LLM client (total deadline per request and per run),
and a killed ``bulkfm metadata harmonize`` leaves no temporary file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from security_helpers import DripServer

from bulkfm.sra.download import DownloadError, download
from bulkfm.sra.net import NetworkError, RetryPolicy, get, session

pytestmark = pytest.mark.timeout(120)  # before the fix these hang: fail instead of blocking the suite


@pytest.fixture(params=["body", "head"])
def drip(request):
    srv = DripServer(drip_head=request.param == "head")
    yield srv
    srv.close()


def test_sra_request_has_a_total_deadline(drip):
    policy = RetryPolicy(retries=1, backoff_s=0.1, max_backoff_s=0.1, timeout_s=1.0)
    t0 = time.monotonic()
    with pytest.raises(NetworkError, match="total deadline of 1s"):
        get(session(), f"{drip.url}/eutils/esearch.fcgi", policy, "NCBI esearch for SRP000001")
    elapsed = time.monotonic() - t0
    assert elapsed < 2 * 1.0 + 0.1 + 2.0, elapsed  # 2 attempts x 1 s + backoff + slack
    assert drip.requests == 2


def test_https_request_has_a_total_deadline(drip, tmp_path, monkeypatch):
    """The same over TLS (NCBI and ENA are HTTPS): the deadline shuts the TLS socket down."""
    import shutil
    import ssl

    if not shutil.which("openssl"):
        pytest.skip("openssl not on PATH (needed for the test certificate)")
    key, cert = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    drip._httpd.socket = ctx.wrap_socket(drip._httpd.socket, server_side=True)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))  # requests prefers it to session.verify
    t0 = time.monotonic()
    with pytest.raises(NetworkError, match="total deadline of 1s"):
        get(session(), drip.url.replace("http://", "https://") + "/x", RetryPolicy(retries=0, timeout_s=1.0),
            "ENA filereport over TLS")
    assert time.monotonic() - t0 < 1.0 + 2.0


def test_stalled_fastq_download_is_cut_and_resumed_then_gives_up(drip, tmp_path):
    policy = RetryPolicy(retries=2, backoff_s=0.1, max_backoff_s=0.1, timeout_s=1.0)
    target = tmp_path / "SRR0000001_1.fastq.gz"
    t0 = time.monotonic()
    with pytest.raises(DownloadError, match=r"gave up after 3 attempts \(.*(stalled|total deadline)"):
        download(f"{drip.url}/vol1/fastq/SRR000/001/SRR0000001/SRR0000001_1.fastq.gz", target, None,
                 policy, session(), "SRR0000001 SRR0000001_1.fastq.gz")
    assert time.monotonic() - t0 < 3 * 2.0 + 0.2 + 3.0  # each attempt: <= 2 windows of timeout_s
    assert not target.exists()
    # what arrived is kept only as the resumable .part of the work folder (a rerun resumes it)
    assert {p.name for p in tmp_path.iterdir()} <= {"SRR0000001_1.fastq.gz.part"}


# ------------------------------------------------------------------------------------- LLM
def _chat_body() -> bytes:
    return json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": "m",
                       "choices": [{"index": 0, "finish_reason": "stop",
                                    "message": {"role": "assistant", "content": json.dumps({"id": None})}}],
                       "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}).encode()


@pytest.fixture(params=["body", "head"])
def llm_drip(request):
    srv = DripServer(body=_chat_body(), drip_head=request.param == "head", content_type="application/json")
    yield srv
    srv.close()


def test_llm_request_has_a_total_deadline(index, llm_drip, tmp_path):
    from bulkfm.metadata.llm import LLMChooser, LLMConfig, Question

    cfg = LLMConfig(base_url=f"{llm_drip.url}/v1", model="m", timeout_s=1.0, max_retries=1, backoff_s=0.05,
                    cache=str(tmp_path / "cache"))
    chooser = LLMChooser(cfg, index)
    _ = chooser.client  # import openai (seconds on a busy machine) before timing
    q = Question("cell_type", "macrophage", (("CL:0000235", "macrophage"),))
    t0 = time.monotonic()
    assert chooser.choose([q]) == {q: None}
    assert time.monotonic() - t0 < 2 * 1.0 + 0.05 + 2.0
    assert chooser.report.rejected["timeout"] == 1 and llm_drip.requests == 2
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]  # nothing cached, no temp file


def test_llm_run_has_a_total_deadline(index, tmp_path):
    from bulkfm.metadata.llm import LLMChooser, LLMConfig, Question

    srv = DripServer(body=_chat_body(), content_type="application/json")
    try:
        cfg = LLMConfig(base_url=f"{srv.url}/v1", model="m", timeout_s=1.0, run_timeout_s=2.5, max_retries=0,
                        concurrency=1, cache=str(tmp_path / "cache"))
        chooser = LLMChooser(cfg, index)
        _ = chooser.client
        qs = [Question("cell_type", f"macrophage {i}", (("CL:0000235", "macrophage"),)) for i in range(20)]
        t0 = time.monotonic()
        answers = chooser.choose(qs)
        assert time.monotonic() - t0 < 2.5 + 1.0 + 2.0  # not 20 x 1 s
        rep = chooser.report
        assert set(answers.values()) == {None} and rep.skipped_deadline >= 15 and rep.calls <= 4
    finally:
        srv.close()


def test_killed_harmonize_leaves_no_temporary_file(meta_cache, tmp_path):
    """SIGTERM while the LLM is dripping: exit 143, and no .tmp beside the outputs."""
    srv = DripServer(body=_chat_body(), content_type="application/json")
    try:
        inp = tmp_path / "in.jsonl"
        inp.write_text("".join(json.dumps({"sample_id": f"S{i}", "attributes": {"cell type": f"sample {i}: mixture of CD4 T cells and a few macrophage"}}) + "\n"
                               for i in range(50)))
        cfg = tmp_path / "config.yaml"
        cfg.write_text(f"metadata:\n  embedding: false\n  llm_threshold: 0.99\n  cache_dir: {meta_cache}\n"
                       f"  llm:\n    base_url: {srv.url}/v1\n    model: m\n    timeout_s: 5\n    max_retries: 0\n")
        out = tmp_path / "out"
        out.mkdir()
        proc = subprocess.Popen([str(Path(sys.executable).with_name("bulkfm")), "metadata", "harmonize", str(inp),
                                 "-o", str(out / "h.parquet"), "--wide", str(out / "h.tsv"), "--config", str(cfg)],
                                stderr=subprocess.PIPE, text=True, env={**os.environ, "BULKFM_CACHE": str(meta_cache)})
        deadline = time.monotonic() + 90
        while srv.requests == 0 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)  # wait until it is inside an LLM request (outputs' temporaries open)
        assert srv.requests > 0, proc.stderr.read() if proc.poll() is not None else "no LLM request"
        assert any(out.iterdir()), "expected the outputs' temporaries while harmonizing"
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=60)
        assert rc == 143, proc.stderr.read()
        assert list(out.iterdir()) == []
    finally:
        srv.close()
