"""The graph and embed rules under real snakemake, on a small real TCGA store."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from bulkfm.embed.io import load_gene_embeddings
from bulkfm.graph.io import load_graph
from bulkfm.matrix.store import MatrixWriter, open_matrix

pytestmark = pytest.mark.workflow
TCGA = "tcga_rnaseqv2_6cohorts/expression_rsem_normalized.genes_x_samples.parquet"


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", "-s", str(workdir / "Snakefile"),
           "-d", str(workdir), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


@pytest.fixture()
def workdir(tmp_path, shared_data, proteins, repo):
    m = open_matrix(shared_data / TCGA)
    with_protein = proteins[proteins["length"] < 200].head(4)
    symbols = set(with_protein["gene_symbol"])
    cols = [i for i, g in enumerate(m.genes) if g.split("|")[0] in symbols] + list(range(400))
    genes = [m.genes[i] for i in cols]
    x = m.rows(np.arange(m.shape[0]))[:, cols]
    names = [g.split("|")[0] for g in genes]
    w = MatrixWriter(tmp_path / "results" / "matrix",
                     pd.DataFrame({"gene_id": genes, "gene_name": names}),
                     pd.DataFrame({"sample_id": m.samples}), layers=("log1p_tpm",))
    w.write(0, log1p_tpm=x)
    w.close()
    split = tmp_path / "results" / "split" / "splits.tsv"
    split.parent.mkdir(parents=True)
    pd.DataFrame({"sample_id": m.samples,
                  "split": np.where(np.arange(m.shape[0]) % 4 == 0, "val", "train")}
                 ).to_csv(split, sep="\t", index=False)
    fasta = tmp_path / "proteins.fa.gz"
    with gzip.open(fasta, "wt") as f:
        for r in with_protein.itertuples():
            f.write(f">{r.gene_symbol} uniprot={r.uniprot_acc} entrez={r.entrez_gene_id} "
                    f"ensembl={r.ensembl_gene_id}\n{r.sequence}\n")
    (tmp_path / "Snakefile").write_text(
        'configfile: "config.yaml"\nOUT = config["outdir"]\nLOGS = f"{OUT}/logs"\n'
        'BENCH = f"{OUT}/benchmarks"\n'
        f'include: "{repo}/workflow/rules/resources.smk"\n'
        f'include: "{repo}/workflow/rules/graph.smk"\n'
        f'include: "{repo}/workflow/rules/embed.smk"\n'
        "rule all:\n    input: gene_graph(), esm2_embeddings()\n")
    return tmp_path, genes, len(with_protein)


def write_config(workdir: Path, weights: str | None) -> None:
    config = {
        "outdir": "results",
        "graph": {"use_split": True, "top_k": 20, "min_pcc": 0.4, "sign": "positive",
                  "chunk_genes": None, "max_memory_gb": 2, "device": "auto", "threads": 2,
                  "runtime": 60, "gpu": 0},
        "embed": {"weights": weights, "proteins": str(workdir / "proteins.fa.gz"),
                  "proteins_url": None, "repr_layer": -1, "batch_tokens": 4096,
                  "device": "auto", "threads": 2},
        "resources": {"gpu": {"mem_mb": 4000, "runtime": 60, "gpu": 0}},
    }
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))


def test_graph_and_embed_rules(workdir, tiny_esm2):
    path, genes, n_with_protein = workdir
    write_config(path, None)
    dry = snakemake(path, "-n")
    assert dry.returncode == 0, dry.stderr
    assert "rule graph" in dry.stdout and "rule embed" not in dry.stdout  # ESM2 off: not in DAG

    weights, _ = tiny_esm2
    write_config(path, str(weights))
    run = snakemake(path)
    assert run.returncode == 0, run.stderr + (path / "results/logs/embed.log").read_text()
    summary = json.loads((path / "results/graph/edges.summary.json").read_text())
    assert summary["n_train_samples"] == 237 and summary["n_edges"] > 1000
    edge_index, weight = load_graph(path / "results/graph/edges.parquet", genes)
    assert edge_index.max() < len(genes) and (weight >= 0.4).all()
    emb, has = load_gene_embeddings(path / "results/embed/esm2.pt", genes)
    assert emb.shape == (len(genes), 64) and int(has.sum()) == n_with_protein
    assert torch.count_nonzero(emb[~has]) == 0
    again = snakemake(path, "-n")
    assert "Nothing to be done" in again.stdout + again.stderr  # reruns resume
