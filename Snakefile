# bulkfm: public human bulk RNA-seq (SRA FASTQ) -> a trained transcriptome foundation model.
#
#   snakemake --cores all                       # the bundled example, offline
#   snakemake --profile profiles/slurm          # a SLURM cluster
#   snakemake -n --config samples=big.tsv       # plan only
#
# Rules are thin: each calls one `bulkfm` subcommand; the logic lives in src/bulkfm/.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


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
    from bulkfm.execution.preflight import check_snakemake_workflow

    check_spawn_quoting(workflow)  # common.smk: before any job is submitted
    check_snakemake_workflow(workflow)


rule all:
    input:
        all_targets(),
    default_target: True
