# graph: per gene its top-k Pearson neighbours over the train split (bulkfm graph build).
# Chunked GEMMs, never all gene pairs in memory; uses a GPU when the job has one (device auto).
GR = config["graph"]
# The matrix of the model part (graph, split, train, evaluate): model_data.matrix when set (the
# demo: a bundled TCGA cut), else this run's own matrix. Split groups likewise.
_MD = config.get("model_data") or {}
MODEL_MATRIX = _MD.get("matrix") or f"{OUT}/matrix"
MODEL_GROUPS = _MD.get("groups") or (f"{OUT}/matrix/samples.parquet" if not _MD.get("matrix") else None)


def gene_graph():
    """The edge list the model trains on (for the train rule's input)."""
    return f"{OUT}/graph/edges.parquet"


rule graph:
    input:
        matrix=MODEL_MATRIX,
        split=f"{OUT}/split/splits.tsv" if GR["use_split"] else [],
    output:
        edges=f"{OUT}/graph/edges.parquet",
        summary=f"{OUT}/graph/edges.summary.json",
        plot=f"{OUT}/graph/edges.degree.png",
    log:
        f"{LOGS}/graph.log",
    benchmark:
        f"{BENCH}/graph.tsv"
    params:
        split=lambda wc, input: ["--split", input.split] if input.split else [],
        chunk=["--chunk-genes", GR["chunk_genes"]] if GR["chunk_genes"] else [],
        # params (not {GR[...]} in the command): a changed value rebuilds the graph
        opts=["--top-k", GR["top_k"], "--min-pcc", GR["min_pcc"], "--sign", GR["sign"],
              "--max-memory-gb", GR["max_memory_gb"], "--device", GR["device"]],
    threads: GR["threads"]
    resources:
        # The budget the command plans with, plus the interpreter and torch.
        mem_mb=int(GR["max_memory_gb"] * 1024) + 1500,
        runtime=GR["runtime"],
        gpu=GR["gpu"],
    conda:
        "../../envs/bulkfm.yaml"
    shell:
        "bulkfm graph build --matrix {input.matrix:q} {params.split:q} -o {output.edges:q} "
        "--summary {output.summary:q} --plot {output.plot:q} {params.opts:q} {params.chunk:q} "
        "--threads {threads} "
        "> {log:q} 2>&1"
