# evaluate (masked-gene reconstruction vs baselines, probes, t-SNE) and the report folder.
EV = config["evaluate"]


rule evaluate:
    input:
        model=f"{OUT}/train/model/manifest.json",
        matrix=MODEL_MATRIX,
        labels=EV["labels"] or [],
    output:
        metrics=f"{OUT}/evaluate/metrics.json",
        recon=report(f"{OUT}/evaluate/reconstruction.png", caption="../report/reconstruction.rst",
                     category="4. Evaluation"),
    log:
        f"{LOGS}/evaluate.log",
    benchmark:
        f"{BENCH}/evaluate.tsv"
    params:
        train=f"{OUT}/train",
        out=f"{OUT}/evaluate",
        labels=lambda wc, input: ["--labels", input.labels] if input.labels else [],
        # params (not {EV[...]} in the command): a changed value re-evaluates
        opts=["--batch-size", EV["batch_size"], "--knn-k", EV["knn_k"], "--max-samples", EV["max_samples"],
              "--seed", EV["seed"], "--probe-repeats", EV["probe_repeats"]],
    threads: EV["threads"]
    resources:
        mem_mb=EV["mem_mb"],
        runtime=EV["runtime"],
    conda:
        "../../envs/bulkfm.yaml"
    shell:
        "bulkfm evaluate {params.train:q} --matrix {input.matrix:q} {params.labels:q} "
        "-o {params.out:q} {params.opts:q} --no-progress > {log:q} 2>&1"


rule report:
    input:
        metrics=f"{OUT}/evaluate/metrics.json",
        curves=f"{OUT}/train/training_curves.png",
        # what the report's "what this run shows" section reads
        context=[f"{OUT}/qc/qc.tsv", f"{OUT}/metadata/harmonized.parquet", f"{OUT}/metadata/review.tsv",
                 f"{OUT}/metadata/sex_report.json", f"{OUT}/graph/edges.summary.json"],
    output:
        f"{OUT}/report/report.md",
    log:
        f"{LOGS}/report.log",
    params:
        train=f"{OUT}/train",
        evaluate=f"{OUT}/evaluate",
        out=f"{OUT}/report",
        outdir=OUT,
    resources:
        **job_size("small"),
    conda:
        "../../envs/bulkfm.yaml"
    shell:
        "bulkfm report --train {params.train:q} --evaluate {params.evaluate:q} -o {params.out:q} "
        "--workflow-outdir {params.outdir:q} > {log:q} 2>&1"
