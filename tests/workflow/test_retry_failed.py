"""A sample that failed with an error is retried by a plain rerun (issue 16, item 5; README
"Failures are explicit"): ENA (a local server on 127.0.0.1) refuses one run's FASTQ during the
first run; the second plain run retries that sample only, and nothing runs after that."""

from __future__ import annotations

import pandas as pd
import pytest
from test_rerun_semantics import executed, planned
from test_workflow_sra_runs import ENA, RUNS, runs_sheet_and_config, serve

pytestmark = pytest.mark.workflow


class FlakyENA(ENA):
    down: set[str] = set()  # runs whose FASTQ requests get HTTP 503

    def do_GET(self):  # noqa: N802
        if any(f"/{run}/" in self.path for run in FlakyENA.down):
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        super().do_GET()


@pytest.fixture()
def flaky_ena():
    yield from serve(FlakyENA)


def test_failed_sample_is_retried_by_a_plain_rerun(flaky_ena, tmp_path, run_snakemake, demo_run):
    sheet, cfg = runs_sheet_and_config(tmp_path, flaky_ena, demo_run, retries=0)
    out = tmp_path / "results"
    args = ("--cores", "2", "--configfile", "config/config.yaml", str(cfg), "--config", f"samples={sheet}",
            f"outdir={out}")
    FlakyENA.down = {"SRR0000002"}
    run_snakemake(*args, "--until", "quant_qc")
    failed = pd.read_csv(out / "qc" / "failed.tsv", sep="\t")
    assert failed["sample"].tolist() == ["SRR0000002"] and "503" in failed["reason"].iloc[0]

    FlakyENA.down = set()  # ENA is back; nothing in the config or the sheet changed
    assert planned(run_snakemake("-n", *args, "--until", "quant_qc"))["quant_batch_retry"] == 1
    proc = run_snakemake(*args, "--until", "quant_qc")
    assert executed(proc) == {"quant_batch_retry": 1, "quant_qc": 1}
    log = (out / "logs" / "quant_batch" / "b00000.r1.log").read_text()
    assert "SRR0000001: already done, skipped" in log and "SRR0000002: pass" in log
    qc = pd.read_csv(out / "qc" / "qc.tsv", sep="\t").set_index("sample")
    assert (qc.loc[list(RUNS), "status"] == "pass").all()
    assert pd.read_csv(out / "qc" / "failed.tsv", sep="\t").empty
    assert not (out / "quant" / "batches" / "b00000.tsv").exists()  # superseded by b00000.r1.tsv

    # a success is final: the next plain run has nothing to do
    assert planned(run_snakemake("-n", *args, "--until", "quant_qc")) == {}
