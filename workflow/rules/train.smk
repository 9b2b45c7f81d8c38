# split -> train -> (evaluate, report in report.smk).
# split: by BioProject/study (columns of the matrix's sample table, merged from SRA metadata),
# so no study is on both sides. train: stage 1 autoencoder, stage 2 graph transformer; resumes
# from its last checkpoint when rerun (e.g. after a SLURM preemption), DDP when nproc > 1.
TR = config["train"]
# Keys that steer the workflow, not the model (the library names them): everything else goes to
# `bulkfm train` as JSON.
from bulkfm.common.settings import JOB_KEYS
from bulkfm.train.config import from_workflow as _train_config

_TRAIN_WORKFLOW_KEYS = JOB_KEYS["train"]
# The section as `bulkfm train` reads it (its defaults, its checks), so the rules ask it, not TR.
try:
    TRAIN = _train_config(TR)
except (TypeError, ValueError) as exc:
    raise WorkflowError(f"config section train: {exc}") from None


def train_launcher(nproc: int) -> list[str]:
    """The command's words (each is shell-quoted by {params.launch:q})."""
    return ["torchrun", "--standalone", "--nproc_per_node", str(nproc), "-m", "bulkfm.cli"] if nproc > 1 else ["bulkfm"]


def train_config_json():
    return json.dumps({k: v for k, v in TR.items() if k not in _TRAIN_WORKFLOW_KEYS}, sort_keys=True)


rule split:
    input:
        matrix=MODEL_MATRIX,
    output:
        f"{OUT}/split/splits.tsv",
    log:
        f"{LOGS}/split.log",
    benchmark:
        f"{BENCH}/split.tsv"
    params:
        groups=["--groups", MODEL_GROUPS] if MODEL_GROUPS else [],
        # params, not {TR[...]} in the command: a changed value reruns the split (and training);
        # Snakemake's code trigger sees only the command template.
        opts=["--val-fraction", TR["val_fraction"], "--test-fraction", TR["test_fraction"], "--seed", TR["seed"]],
    resources:
        **job_size("small"),
    conda:
        "../../envs/bulkfm.yaml"
    shell:
        "bulkfm split --samples {input.matrix:q} {params.groups:q} {params.opts:q} "
        "-o {output:q} > {log:q} 2>&1"


rule train:
    input:
        matrix=MODEL_MATRIX,
        split=f"{OUT}/split/splits.tsv",
        graph=gene_graph() if TRAIN.model.use_gcn else [],
        esm2=esm2_embeddings(),
    output:
        # The checkpoint manifests are written last: they exist only for a finished run.
        model=f"{OUT}/train/model/manifest.json",
        ae=f"{OUT}/train/ae/manifest.json",
        curves=report(f"{OUT}/train/training_curves.png", caption="../report/training.rst",
                      category="3. Training"),
    log:
        f"{LOGS}/train.log",
    benchmark:
        f"{BENCH}/train.tsv"
    params:
        out=f"{OUT}/train",
        cfg=train_config_json(),
        graph=lambda wc, input: ["--graph", input.graph] if input.graph else [],
        esm2=lambda wc, input: ["--esm2", input.esm2] if input.esm2 else [],
        # One process per GPU of the job (resources.gpu), else train.nproc CPU processes (gloo).
        launch=lambda wc, resources: train_launcher(int(resources.gpu) or TR["nproc"]),
    threads: TR["threads"]
    resources:
        **job_size("gpu"),  # resources.gpu.gpu: 0 = a CPU job (torchrun only for train.nproc > 1)
    conda:
        "../../envs/bulkfm.yaml"
    shell:
        "{params.launch:q} train --matrix {input.matrix:q} --splits {input.split:q} "
        "--out {params.out:q} --config-json {params.cfg:q} {params.graph:q} {params.esm2:q} "
        "--on-config-change restart --no-progress > {log:q} 2>&1"
