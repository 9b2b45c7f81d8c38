"""The demo's quantification part through `snakemake --profile profiles/slurm` on the real local
cluster: every job goes through sbatch (seen in sacct, the plugin's default status path), the
batches as one job array, and the outputs equal a local run's."""

from __future__ import annotations

import re
import shutil
import time

import numpy as np
import pandas as pd
import pytest
import yaml

from bulkfm.matrix.store import MatrixStore

from slurm_helpers import REPO, now_for_sacct, sacct_jobs, site_profile, snakemake

pytestmark = pytest.mark.slurm


def test_demo_through_slurm_equals_local(slurm_cluster, tmp_path):
    profile = site_profile(tmp_path / "profile", slurm_cluster)
    # two batches of two samples: the profile submits them as one array job
    runs = {}
    for name in ("slurm", "local"):
        cfg = tmp_path / f"{name}.yaml"
        cfg.write_text(yaml.safe_dump({"outdir": str(tmp_path / name), "quant": {"batch_size": 2}}))
        runs[name] = (tmp_path / name, cfg)

    out, cfg = runs["slurm"]
    since = now_for_sacct()
    t0 = time.monotonic()
    # a --configfile replaces the profile's: name the profile's sizes file too
    proc = snakemake("--profile", str(profile), "--configfile", str(profile / "resources.yaml"),
                     str(cfg), "--",
                     f"{out}/qc/qc.tsv", f"{out}/matrix", timeout=900)
    slurm_s = time.monotonic() - t0
    assert "has been submitted with SLURM jobid" in proc.stdout + proc.stderr

    jobs = sacct_jobs(since, REPO)
    rules = sorted(r["Comment"].split("_wildcards_")[0].removeprefix("rule_") for r in jobs)
    # every job snakemake finished went through sbatch (none ran locally)
    finished = sorted(re.findall(r"Finished jobid: \d+ \(Rule: (\w+)\)", proc.stdout + proc.stderr))
    assert rules == finished, (rules, finished)
    assert {"salmon_index", "reference_genes", "quant_qc", "matrix"} <= set(rules) and rules.count("quant_batch") == 2
    assert all(r["State"] == "COMPLETED" and r["Partition"] == "debug" for r in jobs), jobs
    batch_ids = [r["JobID"] for r in jobs if r["Comment"].startswith("rule_quant_batch")]
    assert len({b.split("_")[0] for b in batch_ids}) == 1 and all("_" in b for b in batch_ids)  # one array

    # The same targets locally, from the same reference (the index is an input, not under test).
    local, lcfg = runs["local"]
    shutil.copytree(out / "reference", local / "reference")
    t0 = time.monotonic()
    snakemake("--cores", "2", "--configfile", str(lcfg), "--", f"{local}/qc/qc.tsv", f"{local}/matrix")
    local_s = time.monotonic() - t0
    print(f"quant+matrix through SLURM {slurm_s:.0f} s (incl. index); local from the index {local_s:.0f} s")

    qs, ql = (pd.read_csv(d / "qc" / "qc.tsv", sep="\t").set_index("sample").sort_index() for d in (out, local))
    assert list(qs.index) == list(ql.index) and len(qs) == 4
    assert (qs["reads_processed"] == ql["reads_processed"]).all()
    assert np.allclose(qs["mapping_rate"], ql["mapping_rate"], atol=0.2)
    ms, ml = MatrixStore(out / "matrix"), MatrixStore(local / "matrix")
    assert ms.genes == ml.genes and sorted(ms.samples) == sorted(ml.samples)
    for sample in ms.samples:
        a = ms.rows([ms.samples.index(sample)])[0]
        b = ml.rows([ml.samples.index(sample)])[0]
        assert np.corrcoef(a, b)[0, 1] > 0.999, sample
