# embed: one ESM2 embedding per gene (bulkfm embed-genes). In the DAG only when embed.weights
# is set: ESM2 weights never download at run time, and the model runs without the ESM2 term.
EM = config["embed"]


def esm2_embeddings():
    """esm2.pt for the train rule's input, or [] when ESM2 is switched off (weights: null)."""
    return f"{OUT}/embed/esm2.pt" if EM["weights"] else []


def protein_fasta():
    return f"{OUT}/embed/proteins.fa.gz" if EM["proteins_url"] else EM["proteins"]


if EM["weights"] and EM["proteins_url"]:

    rule embed_proteins:
        output:
            f"{OUT}/embed/proteins.fa.gz",
        log:
            f"{LOGS}/embed_proteins.log",
        params:
            url=EM["proteins_url"],
        resources:
            **job_size("small"),
        conda:
            "../../envs/bulkfm.yaml"
        shell:
            "bulkfm fetch-proteins --url {params.url:q} -o {output:q} > {log:q} 2>&1"


if EM["weights"]:

    rule embed:
        input:
            proteins=protein_fasta(),
            matrix=f"{OUT}/matrix",
            # A checkpoint path is an input (a changed file reruns); a hub-cache name is not.
            weights=EM["weights"] if str(EM["weights"]).endswith(".pt") else [],
        output:
            f"{OUT}/embed/esm2.pt",
        log:
            f"{LOGS}/embed.log",
        benchmark:
            f"{BENCH}/embed.tsv"
        params:
            weights=EM["weights"],
            # params (not {EM[...]} in the command): a changed value re-embeds
            opts=["--repr-layer", EM["repr_layer"], "--batch-tokens", EM["batch_tokens"], "--device", EM["device"]],
        threads: EM["threads"]
        resources:
            **job_size("gpu"),
        conda:
            "../../envs/bulkfm.yaml"
        shell:
            "bulkfm embed-genes --proteins {input.proteins:q} --genes {input.matrix:q} "
            "--weights {params.weights:q} -o {output:q} {params.opts:q} --threads {threads} "
            "> {log:q} 2>&1"
