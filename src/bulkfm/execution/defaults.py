"""Stop a run on the user's own samples from quietly using the demo's stand-ins.

config/config.yaml runs the bundled demo, so its defaults are demo-sized: a chr19-only
transcriptome and gene table, QC thresholds for files of 10,000 reads, and a bundled TCGA matrix
for the model part (4 chr19 samples cannot train or evaluate a model). A sheet that is not the
demo's with any of these would run for hours and give plausible-looking but wrong results (reads
outside chr19 unmapped, shallow samples passing QC, a model trained on other data), and a warning
scrolls away in a Snakemake log; so planning stops, naming each key to set, unless the config
says ``allow_demo_defaults: true`` (a deliberate small experiment, the tests).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

DEMO_READS = "resources/example"  # the demo sheet's FASTQ and the chr19 reference
DEMO_MODEL = "resources/tcga_demo"  # the bundled TCGA cut the demo's model part trains on
DEMO_QC = {"min_reads": 1000, "min_mapped": 500}  # sized for 10,000-read files


def _inside(path: Any, folder: Path) -> bool:
    if not path:
        return False
    p = Path(os.path.realpath(str(path)))
    return p == folder or folder in p.parents


def is_demo_sheet(sheet: pd.DataFrame, repo: Path) -> bool:
    """Every row is a local FASTQ bundled under resources/example (the demo's own reads)."""
    reads = (repo / DEMO_READS).resolve()
    return bool(len(sheet)) and (sheet["kind"] == "local").all() and all(
        _inside(f, reads) for f in sheet["fastq_1"])


def demo_defaults_in_use(config: Mapping[str, Any], repo: Path) -> list[str]:
    """The demo stand-ins this config uses: one line per key, with what to set instead."""
    reads, model = (repo / DEMO_READS).resolve(), (repo / DEMO_MODEL).resolve()
    found = []
    q = config.get("quant", {})
    if not config.get("matrix", {}).get("archs4"):  # an ARCHS4 import quantifies nothing
        ref = q.get("reference", {})
        for key, what in (("transcripts", "GENCODE/Ensembl transcripts FASTA of the whole genome"),
                          ("tx2gene", "null (derived from GENCODE headers) or the matching tx2gene"),
                          ("gene_table", "the full gene table (e.g. genes_gencode_v48.tsv.gz)")):
            if _inside(ref.get(key), reads):
                found.append(f"quant.reference.{key} = {ref[key]} (demo: chr19 only) -> {what}")
        qc = q.get("qc", {})
        for key, demo in DEMO_QC.items():
            if qc.get(key) == demo:
                found.append(f"quant.qc.{key} = {demo} (demo: 10,000-read files) -> e.g. "
                             f"{demo * 1000:,} for full-depth bulk RNA-seq")
    md = config.get("model_data") or {}
    for key in ("matrix", "groups"):
        if _inside(md.get(key), model):
            found.append(f"model_data.{key} = {md[key]} (the bundled TCGA demo matrix: the model "
                         "would not see your samples) -> null (train on this run's matrix)")
    labels = (config.get("evaluate") or {}).get("labels")
    if _inside(labels, model):
        found.append(f"evaluate.labels = {labels} (TCGA cohort labels) -> null or your labels TSV")
    return found


def check_demo_defaults(config: Mapping[str, Any], sheet: pd.DataFrame, repo: Path,
                        where: str = "config") -> None:
    """Raise ValueError when a sheet other than the demo's meets the demo's stand-ins."""
    if config.get("allow_demo_defaults") or is_demo_sheet(sheet, repo):
        return
    found = demo_defaults_in_use(config, repo)
    if found:
        lines = "\n  ".join(found)
        raise ValueError(
            f"{where}: the sample sheet {config.get('samples')} is not the bundled demo, but the "
            f"config still uses the demo's stand-ins:\n  {lines}\nSet these keys (README, "
            "'Configuration'; e.g. in a --configfile of your own), or set allow_demo_defaults: "
            "true to run with them anyway.")


DEMO_SIZES = "config/config.yaml"  # resources.sized_by of the demo's own label sizes
CLUSTER_EXECUTORS = ("slurm", "kubernetes")


def check_label_sizes(config: Mapping[str, Any], executor: str | None) -> None:
    """A cluster run whose job sizes are still the demo's labels: its profile's resources.yaml
    was not read (a --configfile on the command line replaces the profile's ``configfile:``).
    Raise naming the fix; jobs sized for a laptop would be killed or wait on the wrong nodes."""
    if executor not in CLUSTER_EXECUTORS:
        return
    if (config.get("resources") or {}).get("sized_by", DEMO_SIZES) != DEMO_SIZES:
        return
    raise ValueError(
        f"the {executor} run's job sizes are the demo's labels (resources.sized_by: {DEMO_SIZES}): "
        f"the profile's resources.yaml was not read, because a --configfile on the command line "
        f"replaces the profile's `configfile:`. Give both: --configfile "
        f"profiles/{executor}/resources.yaml YOUR.yaml (or size resources: in your own file and "
        f"set resources.sized_by to its name)")
