# quant: salmon index once per reference, then per-batch download + quant + gene aggregation.
REF = config["quant"]["reference"]
QC = config["quant"]["qc"]
# A prebuilt index (site-wide, or from an earlier run) skips salmon_index.
INDEX = REF["index"] or f"{OUT}/reference/salmon_index"


rule salmon_index:
    input:
        transcripts=REF["transcripts"],
        genome=REF["genome"] or [],
    output:
        directory(f"{OUT}/reference/salmon_index"),
    log:
        f"{LOGS}/salmon_index.log",
    benchmark:
        f"{BENCH}/salmon_index.tsv"
    params:
        genome=lambda wc, input: ["--genome", input.genome] if input.genome else [],
        gencode=["--gencode"] if REF["gencode"] else [],
        kmer=REF["kmer"],
    threads: config["quant"]["index_threads"]
    resources:
        **job_size("large" if REF["genome"] else "medium"),  # a decoy-aware gentrome is larger
    conda:
        "../../envs/salmon.yaml"
    shell:
        "bulkfm quant index --transcripts {input.transcripts:q} {params.genome:q} {params.gencode:q} "
        "--kmer {params.kmer:q} --threads {threads} -o {output:q} > {log:q} 2>&1"


rule reference_genes:
    input:
        transcripts=REF["transcripts"],
        tx2gene=REF["tx2gene"] or [],
        gene_table=REF["gene_table"] or [],
    output:
        directory(f"{OUT}/reference/genes"),
    log:
        f"{LOGS}/reference_genes.log",
    params:
        tx2gene=lambda wc, input: ["--tx2gene", input.tx2gene] if input.tx2gene else [],
        gene_table=lambda wc, input: ["--gene-table", input.gene_table] if input.gene_table else [],
    resources:
        **job_size("medium"),
    conda:
        "../../envs/bulkfm.yaml"
    shell:
        "bulkfm quant genes --transcripts {input.transcripts:q} {params.tx2gene:q} {params.gene_table:q} "
        "-o {output:q} > {log:q} 2>&1"


rule quant_batch:
    input:
        sheet=BATCH_SHEET,
        index=INDEX,
        reference=f"{OUT}/reference/genes",
        fastqs=batch_fastqs,
    output:
        f"{OUT}/quant/batches/{{batch}}.tsv",
    log:
        f"{LOGS}/quant_batch/{{batch}}.log",
    benchmark:
        f"{BENCH}/quant_batch/{{batch}}.tsv"
    params:
        members=batch_signature,  # membership hash: a changed batch reruns (finished samples skip)
        batch_size=BATCH_SIZE,
        outdir=f"{OUT}/quant",
        fastq_dir=f"{OUT}/fastq",
        keep=lambda wc: ["--keep-fastq"] if config["sra"]["keep_fastq"] else [],
        check=lambda wc: [] if QC["check_fastq"] else ["--no-check-fastq"],
        qc=["--min-mapping-rate", QC["min_mapping_rate"], "--min-reads", QC["min_reads"],
            "--min-mapped", QC["min_mapped"], "--library-type", QC["library_type"]],
        extra=["--libtype", config["quant"]["libtype"], "--on-error", config["quant"]["on_error"],
               "--transcript-quant", config["quant"]["transcript_quant"]],
        download=config["sra"]["download_method"],  # the one sra key that can change the reads
    threads: config["quant"]["threads"]
    resources:
        mem_mb=lambda wc, attempt: config["quant"]["mem_mb"] * attempt,
        runtime=lambda wc, attempt: config["quant"]["runtime_per_batch"] * attempt,
    conda:
        "../../envs/salmon.yaml"
    shell:
        "bulkfm quant batch --sheet {input.sheet:q} --batch {wildcards.batch:q} "
        "--batch-size {params.batch_size:q} --index {input.index:q} --reference {input.reference:q} "
        "--outdir {params.outdir:q} --fastq-dir {params.fastq_dir:q} -o {output:q} --threads {threads} "
        "{params.qc:q} {params.extra:q} {params.keep:q} {params.check:q} --sra-config {SRA_JSON:q} "
        "> {log:q} 2>&1"


# The same job for a batch's retry generation (see batch_tables in common.smk).
use rule quant_batch as quant_batch_retry with:
    output:
        f"{OUT}/quant/batches/{{batch}}.r{{gen}}.tsv",
    log:
        f"{LOGS}/quant_batch/{{batch}}.r{{gen}}.log",
    benchmark:
        f"{BENCH}/quant_batch/{{batch}}.r{{gen}}.tsv"


rule quant_qc:
    input:
        batch_tables,
    output:
        qc=report(f"{OUT}/qc/qc.tsv", caption="../report/qc.rst", category="1. Quantification",
                  labels={"table": "per-sample QC"}),
        failed=report(f"{OUT}/qc/failed.tsv", caption="../report/failed.rst",
                      category="1. Quantification", labels={"table": "excluded samples"}),
    log:
        f"{LOGS}/quant_qc.log",
    resources:
        **job_size("small"),
    conda:
        "../../envs/bulkfm.yaml"
    shell:
        "bulkfm quant qc {input:q} --qc {output.qc:q} --failed {output.failed:q} > {log:q} 2>&1"


rule multiqc:
    # MultiQC's Salmon module over every sample (mapping rates, library types, fragment lengths).
    input:
        f"{OUT}/qc/qc.tsv",
    output:
        report=report(f"{OUT}/qc/multiqc/multiqc_report.html", caption="../report/multiqc.rst",
                      category="1. Quantification", labels={"report": "MultiQC"}),
        stats=f"{OUT}/qc/multiqc/multiqc_report_data/multiqc_general_stats.txt",
    log:
        f"{LOGS}/multiqc.log",
    params:
        samples=f"{OUT}/quant/samples",
        outdir=f"{OUT}/qc/multiqc",
    resources:
        **job_size("medium"),
    conda:
        "../../envs/bulkfm.yaml"
    shell:
        "multiqc --force --no-ansi --module salmon --title bulkfm --filename multiqc_report.html "
        "-o {params.outdir:q} "
        "{params.samples:q} > {log:q} 2>&1"
