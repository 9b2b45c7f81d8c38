"""Run accessions end to end: the workflow plans them offline, each batch job downloads the
FASTQ from ENA (a local HTTP server on 127.0.0.1 speaking ENA's filereport + FASTQ protocol,
serving the bundled real reads), checks md5, quantifies, and deletes the FASTQ after quant."""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pandas as pd
import pytest

pytestmark = pytest.mark.workflow

READS = Path(__file__).resolve().parents[2] / "resources" / "example" / "reads"
RUNS = {
    "SRR0000001": ["ENCSR653DFZ_rep2_chr19_10000reads_R1.fastq.gz", "ENCSR653DFZ_rep2_chr19_10000reads_R2.fastq.gz"],
    "SRR0000002": ["rep1_ENCSR510QZW_chr19only_10000_reads.fastq.gz"],
}


def ena_paths(run: str) -> list[str]:
    files = RUNS[run]
    names = [f"{run}_1.fastq.gz", f"{run}_2.fastq.gz"] if len(files) == 2 else [f"{run}.fastq.gz"]
    return [f"/vol1/fastq/SRR000/00{run[-1]}/{run}/{n}" for n in names]


class ENA(BaseHTTPRequestHandler):
    served: list[str] = []

    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):
        url = urlparse(self.path)
        if url.path == "/ena/portal/api/filereport":
            run = parse_qs(url.query)["accession"][0]
            if run not in RUNS:
                self.send_response(204)
                self.end_headers()
                return
            paths = ena_paths(run)
            md5s = [hashlib.md5((READS / f).read_bytes()).hexdigest() for f in RUNS[run]]
            body = ("run_accession\tfastq_ftp\tfastq_md5\tscientific_name\ttax_id\tlibrary_strategy\n"
                    f"{run}\t{';'.join('ftp.sra.ebi.ac.uk' + p for p in paths)}\t{';'.join(md5s)}"
                    "\tHomo sapiens\t9606\tRNA-Seq\n").encode()
        else:
            match = [(r, i) for r in RUNS for i, p in enumerate(ena_paths(r)) if p == url.path]
            if not match:
                self.send_response(404)
                self.end_headers()
                return
            run, i = match[0]
            body = (READS / RUNS[run][i]).read_bytes()
            ENA.served.append(url.path)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def serve(handler):
    """Run ``handler`` on 127.0.0.1 (a generator for fixtures): yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture()
def ena_server():
    ENA.served.clear()  # counts this test's downloads only (the retry test serves through ENA too)
    yield from serve(ENA)


def runs_sheet_and_config(tmp_path: Path, ena: str, demo_run: Path, retries: int) -> tuple[Path, Path]:
    """The RUNS as a sheet, and a config fetching them from ``ena`` with the demo's index."""
    sheet = tmp_path / "runs.tsv"
    sheet.write_text("accession\n" + "\n".join(RUNS) + "\n")
    cfg = tmp_path / "extra.yaml"
    # allow_demo_defaults: a sheet of accessions with the demo's chr19 index, on purpose
    cfg.write_text(json.dumps({"allow_demo_defaults": True,
                               "quant": {"reference": {"index": str(demo_run / "reference" / "salmon_index")}},
                               "sra": {"download_method": "ena", "retries": retries, "backoff_s": 0.1,
                                       "endpoints": {"ena_portal": f"{ena}/ena/portal/api",
                                                     "ena_fastq": ena}}}))
    return sheet, cfg


def test_run_accessions_download_quantify_and_clean_up(ena_server, tmp_path, run_snakemake, demo_run):
    sheet, cfg = runs_sheet_and_config(tmp_path, ena_server, demo_run, retries=1)
    out = tmp_path / "results"
    run_snakemake("--cores", "2", "--configfile", "config/config.yaml", str(cfg),
                  "--config", f"samples={sheet}", f"outdir={out}", "--", f"{out}/qc/qc.tsv")
    qc = pd.read_csv(out / "qc" / "qc.tsv", sep="\t").set_index("sample")
    assert list(qc.index) == list(RUNS)
    assert (qc["status"] == "pass").all(), qc
    assert qc.loc["SRR0000001", "mapping_rate"] > 80
    assert qc.loc["SRR0000002", "library_type"] == "unstranded"  # the single-end run
    assert len(ENA.served) == 3
    assert not [p for p in (out / "fastq").rglob("*.fastq*")]  # deleted after quantification
