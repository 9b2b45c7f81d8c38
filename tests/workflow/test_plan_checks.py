"""Bad sheets stop at plan time (snakemake -n), naming the row (issue 16, item 5): an invalid
accession past row 1,000 (the schema samples only the first rows) and the same run twice."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.workflow


def _plan(run_snakemake, tmp_path, accessions):
    # accessions planned against the demo's chr19 reference, on purpose (allow_demo_defaults)
    sheet = tmp_path / "runs.tsv"
    sheet.write_text("accession\n" + "\n".join(accessions) + "\n")
    return run_snakemake("-n", "--cores", "1", "--config", f"samples={sheet}", f"outdir={tmp_path / 'out'}",
                         "allow_demo_defaults=True", check=False)


def test_invalid_accession_at_row_1001_fails_the_plan(run_snakemake, tmp_path):
    runs = [f"SRR{1000000 + i}" for i in range(1000)] + ["SRR\uff16\uff18\uff13\uff15\uff18\uff14\uff14"]
    proc = _plan(run_snakemake, tmp_path, runs)
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert "row 1002:" in text and "is not a valid SRA/ENA/DDBJ/GEO accession" in text


def test_the_same_run_twice_fails_the_plan(run_snakemake, tmp_path):
    proc = _plan(run_snakemake, tmp_path, ["SRR1000001", "SRR1000002", "srr1000001"])
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert "rows 2 and 4" in text and "name the same run 'SRR1000001'" in text


def test_a_valid_large_sheet_plans(run_snakemake, tmp_path):
    proc = _plan(run_snakemake, tmp_path, [f"SRR{1000000 + i}" for i in range(1001)])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "quant_batch" in proc.stdout


def test_a_bad_train_setting_stops_the_run_before_any_job(run_snakemake, tmp_path):
    # d_model 64 with 5 heads passes the schema (both are integers) but no model can be built:
    # the run must stop at onstart, before the hours of quantification that precede training.
    out = tmp_path / "out"
    extra = tmp_path / "bad_train.yaml"
    extra.write_text("train:\n  model:\n    n_heads: 5\n")
    proc = run_snakemake("--cores", "1", "--configfile", str(extra), "--config", f"outdir={out}",
                         check=False)
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert "config section train" in text and "not divisible by n_heads 5" in text, text[-3000:]
    assert not (out / "quant").exists() and not (out / "reference").exists()


def test_resizing_a_label_resizes_every_rule_that_names_it(run_snakemake, tmp_path):
    extra = tmp_path / "sizes.yaml"
    extra.write_text("resources:\n  small: {mem_mb: 1234, runtime: 7}\n"
                     "  medium: {mem_mb: 8000, runtime: 240}\n  large: {mem_mb: 32000, runtime: 480}\n")
    proc = run_snakemake("-n", "--cores", "1", "--configfile", str(extra), "--config",
                         f"outdir={tmp_path / 'out'}", check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    jobs = proc.stdout.split("\nrule ")[1:]
    sized = {j.split(":", 1)[0]: ("mem_mb=1234" in j and "runtime=7," in j) for j in jobs}
    assert sized["quant_qc"] and sized["split"] and sized["report"]  # small
    assert not sized["matrix"] and not sized["quant_batch"]  # medium; quant's own keys
