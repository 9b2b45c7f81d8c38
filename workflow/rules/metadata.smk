# metadata: SRA/BioSample attributes -> one harmonized ontology record per sample (README,
# "Metadata harmonization"), the review queue, the LLM cost report, the bias report, and sex
# imputed from expression.
# The ontology index is cached under metadata.cache_dir ($BULKFM_CACHE or ~/.cache/bulkfm).
MD = config["metadata"]
# The sex plot only where the reference has XIST/chrY genes (not the chr19 demo: its
# sex_report.json and the report say why there is none).
from bulkfm.metadata.sex import reference_has_sex_genes

SEX_PLOT = bool(config["matrix"]["archs4"]) or reference_has_sex_genes(config["quant"]["reference"]["gene_table"])


rule metadata_harmonize:
    input:
        table=f"{OUT}/sra/metadata.parquet",
        reviewed=MD["reviewed"] or [],
    output:
        parquet=f"{OUT}/metadata/harmonized.parquet",
        tsv=f"{OUT}/metadata/harmonized.tsv",
        review=f"{OUT}/metadata/review.tsv",
        llm=f"{OUT}/metadata/llm_report.json",
    log:
        f"{LOGS}/metadata_harmonize.log",
    benchmark:
        f"{BENCH}/metadata_harmonize.tsv"
    params:
        tracked=json.dumps(tracked("metadata", MD), sort_keys=True),  # LLM timeouts, threads, caches: not
        reviewed=lambda wc, input: ["--reviewed", input.reviewed] if input.reviewed else [],
    threads: 2
    resources:
        **job_size("medium"),
    conda:
        "../../envs/bulkfm.yaml"
    shell:
        "bulkfm metadata harmonize {input.table:q} -o {output.parquet:q} --wide {output.tsv:q} "
        "--review {output.review:q} --llm-report {output.llm:q} {params.reviewed:q} --threads {threads} "
        "--config {METADATA_JSON:q} > {log:q} 2>&1"


rule metadata_bias:
    input:
        harmonized=f"{OUT}/metadata/harmonized.parquet",
        table=f"{OUT}/sra/metadata.parquet",
    output:
        plots=report(
            directory(f"{OUT}/metadata/bias"),
            patterns=["{name}.png"],
            caption="../report/bias.rst",
            category="2. Metadata",
            subcategory="Bias",
            labels={"figure": "{name}"},
        ),
        summary=report(f"{OUT}/metadata/bias_summary.tsv", caption="../report/bias_summary.rst", category="2. Metadata", labels={"table": "bias summary"}),
    log:
        f"{LOGS}/metadata_bias.log",
    benchmark:
        f"{BENCH}/metadata_bias.tsv"
    threads: 1
    resources:
        **job_size("medium"),
    conda:
        "../../envs/bulkfm.yaml"
    shell:
        "bulkfm metadata bias {input.harmonized:q} --input {input.table:q} --outdir {output.plots:q} "
        "--summary {output.summary:q} > {log:q} 2>&1"


rule metadata_impute_sex:
    input:
        harmonized=f"{OUT}/metadata/harmonized.parquet",
        matrix=f"{OUT}/matrix",
    output:
        table=f"{OUT}/metadata/sex_imputed.tsv",
        report=f"{OUT}/metadata/sex_report.json",
        merged=f"{OUT}/metadata/harmonized_imputed.parquet",
        **({"plot": report(f"{OUT}/metadata/sex_imputed.png", caption="../report/sex.rst", category="2. Metadata", labels={"figure": "sex from expression"})} if SEX_PLOT else {}),
    log:
        f"{LOGS}/metadata_impute_sex.log",
    benchmark:
        f"{BENCH}/metadata_impute_sex.tsv"
    params:
        plot=lambda wc, output: ["--plot", output.plot] if SEX_PLOT else [],
    threads: 1
    resources:
        **job_size("medium"),
    conda:
        "../../envs/bulkfm.yaml"
    shell:
        # a matrix without XIST/chrY genes (the chr19 demo) yields an empty table + the reason
        "bulkfm metadata impute-sex --matrix {input.matrix:q} --labels {input.harmonized:q} -o {output.table:q} "
        "--report {output.report:q} {params.plot:q} --merged {output.merged:q} --allow-missing-genes > {log:q} 2>&1"
