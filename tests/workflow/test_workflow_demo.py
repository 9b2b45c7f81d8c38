"""End to end on the bundled real ENCODE reads: real snakemake, real salmon."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from bulkfm.matrix.store import MatrixStore
from bulkfm.quant.aggregate import GeneAggregator, read_quant
from bulkfm.quant.reference import gene_order, read_tx2gene


pytestmark = pytest.mark.workflow


def test_gene_tpm_matches_salmon_reference_output(demo_run, shared_data, repo):
    """The workflow's gene TPM for rep1 equals (up to Salmon's VB noise) the reference run's."""
    ref = shared_data / "encode_chr19_rnaseq" / "salmon_1.10.1_reference_output" / "ENCSR653DFZ_rep1"
    tx2gene = read_tx2gene(repo / "resources/example/tx2gene_chr19.tsv.gz")
    genes = gene_order(tx2gene)
    truth = GeneAggregator(tx2gene, genes).aggregate(read_quant(ref / "quant.sf.gz"), "ref")
    truth_tpm = pd.Series(truth.tpm, index=genes["gene_id"])

    store = MatrixStore(demo_run / "matrix", layer="tpm")
    row = store.rows([store.samples.index("ENCSR653DFZ_rep1")])[0]
    ours = pd.Series(row, index=store.genes)
    # The store renormalises TPM over protein-coding genes: compare on the log scale after the
    # same renormalisation of the truth.
    t = truth_tpm.reindex(ours.index)
    t = t / t.sum() * 1e6
    r = np.corrcoef(np.log1p(ours.to_numpy()), np.log1p(t.to_numpy()))[0, 1]
    assert r > 0.99, r
    qc = pd.read_csv(demo_run / "qc" / "qc.tsv", sep="\t").set_index("sample")
    assert qc.loc["ENCSR653DFZ_rep1", "mapping_rate"] == pytest.approx(93.0, abs=0.5)
    assert qc.loc["ENCSR653DFZ_rep1", "library_type"] == "stranded-reverse"
    assert qc.loc["ENCSR510QZW_rep1", "reads_processed"] == 10000  # the single-end sample
    assert (qc["status"] == "pass").all()
    assert store.shape == (4, 1468)  # chr19 protein-coding genes of the GENCODE table


def test_rerun_has_nothing_to_do(demo_run, run_snakemake):
    proc = run_snakemake("-n", "--cores", "2", "--config", f"outdir={demo_run}")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_killed_batch_resumes_only_missing_samples(demo_run, tmp_path, run_snakemake):
    """A batch that died after some samples redoes only the missing ones."""
    out = tmp_path / "results"
    shutil.copytree(demo_run, out, symlinks=True)
    shutil.rmtree(out / "quant" / "samples" / "ENCSR142YZV")
    (out / "quant" / "batches" / "b00000.tsv").unlink()  # as if the job was killed
    run_snakemake("--cores", "2", "--config", f"outdir={out}", "--", f"{out}/quant/batches/b00000.tsv")
    log = (out / "logs" / "quant_batch" / "b00000.log").read_text()
    assert log.count("already done, skipped") == 3
    assert "ENCSR142YZV: pass" in log
    meta = json.loads((out / "quant" / "samples" / "ENCSR142YZV" / "qc.json").read_text())
    assert meta["status"] == "pass"


def test_snakemake_report_holds_every_result_with_its_caption(demo_run, tmp_path, run_snakemake):
    report = tmp_path / "report.html"
    run_snakemake("--report", str(report), "--config", f"outdir={demo_run}")
    html = report.read_text(errors="replace")
    for item in ("qc.tsv", "failed.tsv", "multiqc_report.html", "bias_summary.tsv",
                 "training_curves.png", "reconstruction.png"):
        assert item in html, item
    # chr19 has no XIST/chrY genes: no sex plot at all (no placeholder image), the reason instead
    assert "sex_imputed.png" not in html and not (demo_run / "metadata" / "sex_imputed.png").exists()
    for caption in ("Samples excluded from the matrix", "Masked-gene reconstruction",
                    "Dataset bias, reported rather than hidden"):
        assert caption in html, caption
