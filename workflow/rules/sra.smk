# sra: resolve accessions to runs and their metadata (one row per run).
# A checkpoint: when the sheet names studies/experiments/GEO series, the runs (and so the
# quantification batches) are known only after it has run.


checkpoint sra_metadata:
    input:
        sheet=SHEET,
    output:
        table=f"{OUT}/sra/metadata.parquet",
    log:
        f"{LOGS}/sra_metadata.log",
    benchmark:
        f"{BENCH}/sra_metadata.tsv"
    params:
        tracked=json.dumps(tracked("sra", config["sra"]), sort_keys=True),  # a change reruns; timeouts do not
    threads: 1
    resources:
        **job_size("small"),
    conda:
        "../../envs/bulkfm.yaml"
    shell:
        "bulkfm sra resolve --sheet {input.sheet:q} -o {output.table:q} --config {SRA_JSON:q} > {log:q} 2>&1"
