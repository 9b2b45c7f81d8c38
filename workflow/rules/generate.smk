# generate: metadata-conditioned expression generator (library: src/bulkfm/generate/).
# In the DAG after matrix and metadata: trains on the matrix store and the harmonized table,
# holds out whole studies (BioProject/study) and unseen combinations, evaluates on them.
# Opt-in (it needs a few hundred samples; the 4-sample demo has too few): `snakemake generate_all`.
GEN = config.get("generate", {})
# Keys that steer the workflow, not the model (the library names them): the rest goes to
# `bulkfm train-generator`.
from bulkfm.common.settings import JOB_KEYS

_GEN_WORKFLOW_KEYS = JOB_KEYS["generate"]


def generate_config_json():
    return json.dumps({k: v for k, v in GEN.items() if k not in _GEN_WORKFLOW_KEYS}, sort_keys=True)


def generate_metadata():
    return GEN.get("metadata") or f"{OUT}/metadata/harmonized.parquet"


rule train_generator:
    input:
        matrix=f"{OUT}/matrix",
        metadata=generate_metadata(),
    output:
        model=f"{OUT}/generate/model/manifest.json",
        split=f"{OUT}/generate/split.tsv",
    log:
        f"{LOGS}/train_generator.log",
    benchmark:
        f"{BENCH}/train_generator.tsv"
    params:
        out=f"{OUT}/generate",
        cfg=generate_config_json(),
    threads: GEN.get("threads", 2)
    resources:
        mem_mb=GEN.get("mem_mb", 4000),
        runtime=GEN.get("runtime", 60),
    conda:
        "../../envs/bulkfm.yaml"
    shell:
        "bulkfm train-generator --matrix {input.matrix:q} --metadata {input.metadata:q} "
        "--out {params.out:q} --config-json {params.cfg:q} --no-progress > {log:q} 2>&1"


rule evaluate_generator:
    input:
        model=f"{OUT}/generate/model/manifest.json",
        matrix=f"{OUT}/matrix",
        metadata=generate_metadata(),
    output:
        metrics=f"{OUT}/generate/evaluate/metrics.json",
        report=f"{OUT}/generate/evaluate/report.md",
    log:
        f"{LOGS}/evaluate_generator.log",
    benchmark:
        f"{BENCH}/evaluate_generator.tsv"
    params:
        model=f"{OUT}/generate",
        out=f"{OUT}/generate/evaluate",
    threads: GEN.get("threads", 2)
    resources:
        mem_mb=GEN.get("mem_mb", 4000),
        runtime=GEN.get("runtime", 60),
    conda:
        "../../envs/bulkfm.yaml"
    shell:
        "bulkfm evaluate-generator {params.model:q} --matrix {input.matrix:q} "
        "--metadata {input.metadata:q} -o {params.out:q} > {log:q} 2>&1"


rule generate_all:
    input:
        rules.evaluate_generator.output,
