"""Rerun semantics, proven by counting the jobs snakemake runs on a copy of the finished demo:
`-R rule`, `--forcerun`, `--until`, and adding samples to an existing run (only the batch that
gains them reruns, its finished samples are skipped, then qc and the matrix)."""

from __future__ import annotations

import re
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bulkfm.matrix.store import MatrixStore

pytestmark = pytest.mark.workflow

FINISHED = re.compile(r"Finished jobid: \d+ \(Rule: (\w+)\)")


def executed(proc) -> Counter:
    """Rules snakemake ran, from its 'Finished jobid: N (Rule: x)' lines."""
    return Counter(FINISHED.findall(proc.stdout + proc.stderr))


def planned(proc) -> Counter:
    """Rules in a dry run's 'Job stats' table."""
    text = proc.stdout + proc.stderr
    if "Nothing to be done" in text:
        return Counter()
    table = text.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    rows = [line.split() for line in table.splitlines()[3:]]
    return Counter({r[0]: int(r[1]) for r in rows if len(r) == 2 and r[0] != "total"})


@pytest.fixture()
def finished(demo_run, tmp_path) -> Path:
    """A private copy of the finished demo (mtimes kept, so nothing is outdated)."""
    out = tmp_path / "results"
    shutil.copytree(demo_run, out, symlinks=True)
    return out


def targets(out: Path) -> list[str]:
    return [f"{out}/qc/qc.tsv", f"{out}/matrix"]


def test_nothing_to_do_on_the_copy(finished, run_snakemake):
    proc = run_snakemake("-n", "--cores", "2", "--config", f"outdir={finished}", "--", *targets(finished))
    assert planned(proc) == Counter()


def test_R_reruns_the_rule_and_what_depends_on_it_only(finished, run_snakemake):
    before = (finished / "qc" / "qc.tsv").stat().st_mtime_ns
    proc = run_snakemake("--cores", "2", "--config", f"outdir={finished}", "-R", "quant_qc", "--",
                         *targets(finished))
    assert executed(proc) == Counter({"quant_qc": 1, "matrix": 1})
    assert (finished / "qc" / "qc.tsv").stat().st_mtime_ns > before
    assert MatrixStore(finished / "matrix").shape[0] == 4


def test_forcerun_with_until_stops_at_the_rule(finished, run_snakemake):
    matrix_mtime = (finished / "matrix").stat().st_mtime_ns
    proc = run_snakemake("--cores", "2", "--config", f"outdir={finished}", "--forcerun", "quant_qc",
                         "--until", "quant_qc", "--", *targets(finished))
    assert executed(proc) == Counter({"quant_qc": 1})  # neither the batches nor the matrix
    assert (finished / "matrix").stat().st_mtime_ns == matrix_mtime


def test_forcerun_batch_plans_downstream_not_the_index(finished, run_snakemake):
    proc = run_snakemake("-n", "--cores", "2", "--config", f"outdir={finished}", "--forcerun",
                         "quant_batch", "--", *targets(finished))
    assert planned(proc) == Counter({"quant_batch": 1, "quant_qc": 1, "matrix": 1})


def test_until_on_a_fresh_run_plans_only_upstream(tmp_path, run_snakemake):
    proc = run_snakemake("-n", "--cores", "2", "--config", f"outdir={tmp_path / 'fresh'}", "--until",
                         "quant_batch")
    plan = planned(proc)
    assert plan == Counter({"salmon_index": 1, "reference_genes": 1, "quant_batch": 1}), plan


def test_adding_a_sample_quantifies_only_it(finished, tmp_path, run_snakemake, repo):
    """Append a sample (a copy of a bundled FASTQ pair under a new name): the batch reruns but skips
    its four finished samples; salmon runs once; the sheet's metadata table, qc and matrix are rebuilt.
    (A copy: the same file under two names is refused by the sheet check.)"""
    sheet = pd.read_csv(repo / "config" / "samples.tsv", sep="\t", dtype=str, keep_default_na=False)
    new = sheet.iloc[[0]].copy()
    new["sample"] = "ENCSR653DFZ_rep1_again"
    for col in ("fastq_1", "fastq_2"):  # absolute: the sheet lives elsewhere now
        copies = [tmp_path / f"again_{Path(p).name}" for p in new[col]]
        for p, c in zip(new[col], copies):
            shutil.copyfile(repo / p, c)
        new[col] = [str(c) for c in copies]
        sheet[col] = [str(repo / p) if p else "" for p in sheet[col]]
    grown = tmp_path / "samples_grown.tsv"
    pd.concat([sheet, new]).to_csv(grown, sep="\t", index=False)

    # a sheet of its own beside the demo's chr19 reference, on purpose (allow_demo_defaults)
    proc = run_snakemake("--cores", "2", "--config", f"outdir={finished}", f"samples={grown}",
                         "allow_demo_defaults=True", "--", *targets(finished))
    ran = executed(proc)
    # the sheet's own table (sra_metadata) is rebuilt too; the index and gene table are not
    assert ran == Counter({"sra_metadata": 1, "quant_batch": 1, "quant_qc": 1, "matrix": 1}), ran
    log = (finished / "logs" / "quant_batch" / "b00000.log").read_text()
    assert log.count("already done, skipped") == 4
    assert "ENCSR653DFZ_rep1_again: pass" in log
    store = MatrixStore(finished / "matrix")
    assert store.shape[0] == 5
    a, b = store.rows([store.samples.index("ENCSR653DFZ_rep1"), store.samples.index("ENCSR653DFZ_rep1_again")])
    assert np.corrcoef(a, b)[0, 1] > 0.999  # same reads: same expression up to Salmon's VB noise


def test_a_stage_setting_reruns_that_stage_and_what_follows_only(demo_run, run_snakemake, tmp_path):
    # on the demo run itself (dry runs only): a copy has no .snakemake records of its params,
    # so Snakemake could not see a changed setting there at all
    finished = demo_run
    # network patience and LLM timeouts change how a stage works, not what it writes: nothing
    # reruns but the provenance record, which stores the whole config
    how = tmp_path / "how.yaml"
    how.write_text("sra: {timeout_s: 7, retries: 9}\nmetadata: {llm: {timeout_s: 5}}\n")
    proc = run_snakemake("-n", "--cores", "2", "--configfile", str(how), "--config",
                         f"outdir={finished}")
    assert planned(proc) == Counter({"provenance": 1, "all": 1})
    # an evaluation setting reruns the evaluation and the report built from it, not training
    what = tmp_path / "what.yaml"
    what.write_text("evaluate: {knn_k: 7}\n")
    proc = run_snakemake("-n", "--cores", "2", "--configfile", str(what), "--config",
                         f"outdir={finished}")
    assert planned(proc) == Counter({"evaluate": 1, "report": 1, "provenance": 1, "all": 1})
