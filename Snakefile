# bulkfm: public human bulk RNA-seq (SRA FASTQ) -> a trained transcriptome foundation model.
#
#   snakemake --cores all                       # the bundled example, offline
#   snakemake --profile profiles/slurm          # a SLURM cluster
#   snakemake -n --config samples=big.tsv       # plan only
#
# Rules are thin: each calls one `bulkfm` subcommand; the logic lives in src/bulkfm/.
import warnings

from snakemake.utils import min_version, validate

# Snakemake 9.27 evaluates a resource that reads input.size_mb inside its own running event loop
# for run: jobs (the provenance step), catches the NestedCoroutineError and evaluates it later,
# but leaves the coroutine it made unawaited: a harmless "coroutine 'InputFiles._predicated_size_
# files.<locals>.sizes' was never awaited" RuntimeWarning. Hidden by its exact text, nothing else.
warnings.filterwarnings(
    "ignore", category=RuntimeWarning,
    message=r"coroutine 'InputFiles\._predicated_size_files\.<locals>\.sizes' was never awaited")

min_version("9.0")


configfile: "config/config.yaml"


# `--config allow_demo_defaults=true` arrives as the string "true" (Snakemake parses only
# True/False): read the usual spellings as the boolean the schema wants.
if isinstance(config.get("allow_demo_defaults"), str) and config["allow_demo_defaults"].lower() in (
        "true", "false", "yes", "no", "1", "0"):
    config["allow_demo_defaults"] = config["allow_demo_defaults"].lower() in ("true", "yes", "1")


validate(config, "workflow/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/sra.smk"
include: "workflow/rules/quant.smk"
include: "workflow/rules/matrix.smk"
include: "workflow/rules/metadata.smk"
include: "workflow/rules/graph.smk"
include: "workflow/rules/embed.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/generate.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/provenance.smk"


onstart:
    # With the slurm executor: check partitions, GPUs, memory and accounting before any sbatch,
    # and stop with the rule and the profile key to change (no-op for other executors).
    from bulkfm.execution.defaults import check_label_sizes
    from bulkfm.execution.preflight import check_snakemake_workflow
    from bulkfm.execution.stage_configs import check_stage_configs

    check_spawn_quoting(workflow)  # common.smk: before any job is submitted
    # each stage's section through its own reader: unknown keys, bad pairs (d_model % n_heads)
    check_stage_configs(config)
    # a cluster run with the demo's job sizes: the profile's resources.yaml was not read
    check_label_sizes(config, getattr(getattr(workflow, "executor_plugin", None), "cli_prefix", None))
    check_snakemake_workflow(workflow)


rule all:
    input:
        all_targets(),
    default_target: True
