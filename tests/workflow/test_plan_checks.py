"""Bad sheets stop at plan time (snakemake -n), naming the row (issue 16, item 5): an invalid
accession past row 1,000 (the schema samples only the first rows) and the same run twice."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.workflow

REPO = Path(__file__).resolve().parents[2]


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


def _job_resources(proc) -> dict[str, str]:
    """rule -> the `resources:` line of its (last) job in a dry run's output."""
    assert proc.returncode == 0, proc.stderr[-2000:]
    return {j.split(":", 1)[0]: j.split("resources:", 1)[1].split("\n", 1)[0]
            for j in proc.stdout.split("\nrule ")[1:]}


def test_the_gpu_label_sizes_the_accelerator_jobs_and_passes_its_gpu_keys(run_snakemake, tmp_path):
    # A config overlay sizing the gpu label: its memory/time per attempt and its GPU keys (count,
    # SLURM partition, gres type) reach the jobs that name it, and no other job.
    extra = tmp_path / "gpu.yaml"
    extra.write_text("resources:\n  gpu: {mem_mb: 4321, runtime: 9, gpu: 1, slurm_partition: gpu,"
                     " gpu_model: a100}\n")
    jobs = _job_resources(run_snakemake("-n", "--cores", "1", "--configfile", str(extra), "--config",
                                        f"outdir={tmp_path / 'out'}", check=False))
    for want in ("mem_mb=4321", "runtime=9", "gpu=1,", "slurm_partition=gpu", "gpu_model=a100"):
        assert want in jobs["train"], jobs["train"]
    for rule in ("split", "matrix", "quant_batch", "report"):
        assert "slurm_partition" not in jobs[rule] and "gpu=" not in jobs[rule], jobs[rule]
    # As shipped, the gpu label is a CPU job: a local run without a GPU trains on the CPU.
    shipped = _job_resources(run_snakemake("-n", "--cores", "1", "--config",
                                           f"outdir={tmp_path / 'out'}", check=False))
    assert "gpu=0" in shipped["train"] and "mem_mb=8000" in shipped["train"], shipped["train"]


def test_the_slurm_profile_sizes_the_labels(run_snakemake, tmp_path):
    # profiles/slurm sizes the labels in its resources.yaml (its `configfile:`), not rule by rule.
    import yaml

    sizes = yaml.safe_load((REPO / "profiles" / "slurm" / "resources.yaml").read_text())["resources"]
    jobs = _job_resources(run_snakemake("-n", "--profile", str(REPO / "profiles" / "slurm"),
                                        "--config", f"outdir={tmp_path / 'out'}", check=False))
    gpu, medium = sizes["gpu"], sizes["medium"]
    for want in (f"mem_mb={gpu['mem_mb']},", f"runtime={gpu['runtime']}", f"gpu={gpu['gpu']}",
                 f"slurm_partition={gpu['slurm_partition']}", f"gpu_model={gpu['gpu_model']}"):
        assert want in jobs["train"], jobs["train"]
    for rule in ("matrix", "metadata_harmonize"):  # medium: the profile's size, the default partition
        assert f"mem_mb={medium['mem_mb']}," in jobs[rule] and "slurm_partition=debug" in jobs[rule]
        assert "gpu" not in jobs[rule], jobs[rule]
    assert "gpu" not in jobs["quant_batch"] and "mem_mb=8000," in jobs["quant_batch"]  # quant's keys


def test_every_cluster_profile_sizes_every_label():
    import yaml

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["resources"]
    for name in ("slurm", "kubernetes"):
        profile = yaml.safe_load((REPO / "profiles" / name / "config.yaml").read_text())
        assert "set-resources" not in profile or not {"train", "embed", "matrix"} & set(
            profile["set-resources"]), f"{name}: size the labels, not the rules"
        sizes = yaml.safe_load((REPO / "profiles" / name / profile["configfile"]).read_text())
        assert set(sizes["resources"]) == set(config), name
        assert sizes["resources"]["sized_by"] == f"profiles/{name}/{profile['configfile']}"
        assert sizes["resources"]["gpu"]["gpu"] >= 1, name
