# Shared planning: the sample sheet, batches, output paths. Parsed once per snakemake start.
import json
import os
import sys
from pathlib import Path

import bulkfm.samples as bs
from bulkfm.common.settings import tracked
from bulkfm.execution.defaults import check_demo_defaults
from bulkfm.execution.locks import unlock_hint

include: "resources.smk"

# A lock left by a killed/interrupted run: print the exact --unlock step (Snakemake's own
# LockException, raised after parsing, does not give the command).
if _lock_msg := unlock_hint(os.getcwd(), sys.argv):
    print(_lock_msg, file=sys.stderr)

# Whole sections for the commands, in the shell line as globals: Snakemake does not compare
# these; the rules' params carry only the keys that change outputs (settings.tracked).
SRA_JSON = json.dumps(config["sra"])
METADATA_JSON = json.dumps(config["metadata"])


OUT = config["outdir"]
LOGS = f"{OUT}/logs"
BENCH = f"{OUT}/benchmarks"
SHEET = config["samples"]
BATCH_SIZE = int(config["quant"]["batch_size"])

try:
    _sheet = bs.check_sheet(bs.read_sheet(SHEET), SHEET)
except bs.SampleSheetError as exc:
    raise WorkflowError(str(exc))
# The schema checks columns and types on the first rows; check_sheet above checks every row
# (accessions, names, the same run/FASTQ twice; vectorised, 500k rows in seconds).
validate(_sheet.head(1000), "../schemas/samples.schema.yaml")
# Another sheet with the demo's chr19 reference / QC thresholds / TCGA model matrix: stop, naming
# the keys (bulkfm.execution.defaults; opt-out: allow_demo_defaults: true).
try:
    check_demo_defaults(config, _sheet, Path(workflow.basedir))
except ValueError as exc:
    raise WorkflowError(str(exc))

# Run accessions and local FASTQ plan offline. Studies/experiments/GEO accessions need the
# sra_metadata checkpoint to expand them to runs first.
NEEDS_RESOLUTION = bs.needs_resolution(_sheet)
SAMPLES = None if NEEDS_RESOLUTION else bs.samples_from_sheet(_sheet)
# The sheet the batch jobs read their members from.
BATCH_SHEET = f"{OUT}/sra/metadata.parquet" if NEEDS_RESOLUTION else SHEET


def planned_samples():
    if not NEEDS_RESOLUTION:
        return SAMPLES
    path = checkpoints.sra_metadata.get().output.table
    return bs.samples_from_sheet(bs.check_sheet(bs.read_sheet(path), path))


def batch_tables(wildcards):
    """Each batch's table of its current retry generation: after a run in which samples failed
    with an error, a table that does not exist yet, so a plain rerun retries them."""
    from bulkfm.quant.batch import batch_table_name, retry_generation

    samples = planned_samples()
    batches = f"{OUT}/quant/batches"
    return [f"{batches}/{batch_table_name(b, retry_generation(batches, b))}"
            for b in bs.batch_ids(len(samples), BATCH_SIZE)]


wildcard_constraints:
    batch=r"b\d+",
    gen=r"\d+",


def batch_fastqs(wildcards):
    """Local FASTQ of a batch's members: inputs, so that a changed file reruns its batch."""
    members = bs.batch_members(planned_samples(), wildcards.batch, BATCH_SIZE)
    return [f for s in members if s.run is None for f in s.fastqs]


def batch_signature(wildcards):
    return bs.batch_signature(bs.batch_members(planned_samples(), wildcards.batch, BATCH_SIZE))


def provenance_inputs():
    """The final outputs whose checksums the provenance records."""
    return [
        f"{OUT}/matrix",
        f"{OUT}/qc/qc.tsv",
        f"{OUT}/qc/failed.tsv",
        f"{OUT}/sra/metadata.parquet",
        f"{OUT}/metadata/harmonized.parquet",
        f"{OUT}/metadata/bias_summary.tsv",
        f"{OUT}/metadata/sex_imputed.tsv",
        f"{OUT}/metadata/harmonized_imputed.parquet",
        f"{OUT}/report/report.md",
    ] + ([f"{OUT}/qc/multiqc/multiqc_report.html"] if config["quant"]["multiqc"] else [])


def all_targets():
    return provenance_inputs() + [f"{OUT}/provenance"]


def check_spawn_quoting(workflow):
    """Stop a cluster/cloud run whose --config values or paths hold a quote or backslash.

    Those executors re-launch every job as `python -m snakemake ... --config k=v` through a shell,
    and Snakemake quotes the values with Python's repr(), which a value holding ' (then quoted
    with "...", so $(...) inside runs) or a backslash escapes. Locally, rules quote every path.
    """
    plugin = getattr(workflow, "executor_plugin", None)
    if plugin is None or not getattr(plugin.common_settings, "non_local_exec", False):
        return
    values = [str(v) for v in (workflow.config_settings.config_args or [])] + [OUT, SHEET]
    bad = [v for v in values if any(c in v for c in "'\\\n\r`")]
    if bad:
        raise WorkflowError(
            f"{bad[0]!r} holds a quote, backslash, backtick or newline: the {plugin.name} executor "
            "passes config values to its jobs through a shell command line that Snakemake does not "
            "quote safely. Use an outdir, sample sheet path and --config values without them "
            "(or run locally, where every rule quotes its paths).")
