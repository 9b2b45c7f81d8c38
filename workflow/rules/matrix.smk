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
            gene_table=lambda wc, input: f"--gene-table {input.gene_table}" if input.gene_table else "",
            types=",".join(MX["gene_types"]) or "all",
        resources:
            mem_mb=8000,
            runtime=240,
        conda:
            "../../envs/bulkfm.yaml"
        shell:
            "bulkfm matrix import-archs4 {input.h5} {params.gene_table} --gene-types {params.types} "
            "-o {output} > {log} 2>&1"

else:

    rule matrix:
        input:
            qc=f"{OUT}/qc/qc.tsv",
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
            quant=f"{OUT}/quant",
            types=",".join(MX["gene_types"]) or "all",
            cfa=MX["counts_from_abundance"],
            renorm="" if MX["renormalize_tpm"] else "--no-renormalize-tpm",
        resources:
            mem_mb=8000,
            runtime=240,
        conda:
            "../../envs/bulkfm.yaml"
        shell:
            "bulkfm matrix build --qc {input.qc} --quant-dir {params.quant} "
            "--reference {input.reference} --metadata {input.metadata} --gene-types {params.types} "
            "--counts-from-abundance {params.cfa} {params.renorm} -o {output} > {log} 2>&1"
