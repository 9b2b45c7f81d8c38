# matrix: stack the per-sample gene vectors of QC-passing samples (streamed, flat memory),
# or import an ARCHS4-style HDF5 when config matrix.archs4 is set.
MX = config["matrix"]

if MX["archs4"]:

    rule matrix:
        input:
            h5=MX["archs4"],
            gene_table=MX["gene_table"] or [],
        output:
            directory(f"{OUT}/matrix"),
        log:
            f"{LOGS}/matrix.log",
        benchmark:
            f"{BENCH}/matrix.tsv"
        params:
            gene_table=lambda wc, input: ["--gene-table", input.gene_table] if input.gene_table else [],
            types=",".join(MX["gene_types"]) or "all",
        resources:
            **job_size("medium"),
        conda:
            "../../envs/bulkfm.yaml"
        shell:
            "bulkfm matrix import-archs4 {input.h5:q} {params.gene_table:q} --gene-types {params.types:q} "
            "-o {output:q} > {log:q} 2>&1"

else:

    rule matrix:
        input:
            # qc.tsv lists each passing sample's gene vector, as the batch tables wrote it
            qc=f"{OUT}/qc/qc.tsv",
            batches=batch_tables,
            reference=f"{OUT}/reference/genes",
            # study/BioProject per sample, for the split by study downstream
            metadata=f"{OUT}/sra/metadata.parquet",
        output:
            directory(f"{OUT}/matrix"),
        log:
            f"{LOGS}/matrix.log",
        benchmark:
            f"{BENCH}/matrix.tsv"
        params:
            types=",".join(MX["gene_types"]) or "all",
            cfa=MX["counts_from_abundance"],
            renorm=[] if MX["renormalize_tpm"] else ["--no-renormalize-tpm"],
        resources:
            **job_size("medium"),
        conda:
            "../../envs/bulkfm.yaml"
        shell:
            "bulkfm matrix build --qc {input.qc:q} "
            "--reference {input.reference:q} --metadata {input.metadata:q} --gene-types {params.types:q} "
            "--counts-from-abundance {params.cfa:q} {params.renorm:q} -o {output:q} > {log:q} 2>&1"
