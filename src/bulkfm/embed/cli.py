"""``bulkfm embed-genes`` (ESM2 gene embeddings) and ``bulkfm fetch-proteins``."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch

from bulkfm.cli import HelpFormatter

log = logging.getLogger(__name__)

MATRIX_SUFFIXES = (".parquet", ".h5", ".hdf5")


def register(subparsers: argparse._SubParsersAction) -> None:
    # `bulkfm embed` is the sample embedding of a trained model (bulkfm.train.cli); the gene
    # side is `embed-genes`, the one download it needs is `fetch-proteins` (bulkfm.cli.MOVED
    # answers the old `bulkfm embed genes` / `embed fetch-proteins` with the new names).
    g = subparsers.add_parser(
        "embed-genes",
        help="ESM2 gene embeddings: one per gene (mean over its canonical protein's residues)",
        description=(
            "For each gene of GENES, take its longest protein in PROTEINS, run ESM2 and average "
            "the chosen layer over the residues (BOS/EOS/padding excluded). Proteins longer than "
            "1022 residues are embedded in half-overlapping windows. Genes without a protein get "
            "a zero vector and has_protein=False. Weights are read from WEIGHTS (a .pt path, or a "
            "model name in the torch hub cache); nothing is downloaded."
        ),
        formatter_class=HelpFormatter,
    )
    g.add_argument("--proteins", required=True,
                   help="protein FASTA(.gz): GENCODE translations, Ensembl pep, UniProt or "
                        "bulkfm's bundled subset headers")
    g.add_argument("--genes", required=True,
                   help="a matrix (store dir, .parquet, .h5: its gene columns, in order) or a "
                        "text file with one gene id per line")
    g.add_argument("--weights", required=True,
                   help="ESM2 checkpoint .pt (with NAME-contact-regression.pt beside it) or a "
                        "model name in the torch hub cache, e.g. esm2_t33_650M_UR50D")
    g.add_argument("-o", "--output", required=True, help="esm2.pt to write")
    g.add_argument("--repr-layer", type=int, default=-1,
                   help="layer to average (-1 = last; 0 = token embeddings)")
    g.add_argument("--batch-tokens", type=int, default=4096,
                   help="tokens per batch, padding included (memory ~ batch_tokens x layers)")
    g.add_argument("--max-residues", type=int, default=1022,
                   help="window length for long proteins (ESM2's training crop)")
    g.add_argument("--device", default="auto", help="auto (cuda if present), cpu, cuda")
    g.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    g.set_defaults(func=run_genes)

    f = subparsers.add_parser(
        "fetch-proteins",
        help="download a protein FASTA once (production; the demo uses the bundled one)",
        description="Download URL (e.g. GENCODE pc_translations.fa.gz) to OUTPUT atomically, "
                    "checking that it is a FASTA. Only for workflow setup; nothing else in "
                    "bulkfm downloads.",
        formatter_class=HelpFormatter,
    )
    f.add_argument("--url", required=True, help="http(s)/ftp URL of a (gzipped) protein FASTA")
    f.add_argument("-o", "--output", required=True, help="where to write it")
    f.add_argument("--retries", type=int, default=3, help="attempts before giving up")
    f.add_argument("--timeout", type=float, default=60.0, help="seconds per network read")
    f.set_defaults(func=run_fetch)


def read_gene_list(path: Path) -> tuple[list[str], list[str] | None]:
    """``(genes, gene_names or None)`` from a matrix or a one-id-per-line text file."""
    if path.is_dir() or path.suffix.lower() in MATRIX_SUFFIXES:
        from bulkfm.matrix.store import open_matrix

        matrix = open_matrix(path)
        return list(matrix.genes), getattr(matrix, "gene_names", None)
    if not path.exists():
        raise FileNotFoundError(f"{path}: gene list not found")
    genes = [line.split("\t")[0].strip() for line in path.read_text().splitlines()]
    genes = [g for g in genes if g and not g.startswith("#")]
    if len(set(genes)) != len(genes):
        raise ValueError(f"{path}: duplicate gene ids")
    if not genes:
        raise ValueError(f"{path}: no gene ids")
    return genes, None


def run_genes(args: argparse.Namespace) -> int:
    from bulkfm.cli import UserError
    from bulkfm.embed.esm2 import embed_sequences, load_esm2
    from bulkfm.embed.io import save_gene_embeddings
    from bulkfm.embed.proteins import canonical_proteins, proteins_for_genes, read_fasta
    from bulkfm.graph.device import resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        device = resolve_device(args.device)
        genes, names = read_gene_list(Path(args.genes))
        gene_proteins = canonical_proteins(read_fasta(args.proteins))
        if not gene_proteins.proteins:
            raise ValueError(f"{args.proteins}: no proteins with a recognisable gene in the "
                             "headers (see `bulkfm embed-genes --help` for the formats)")
        chosen = proteins_for_genes(genes, gene_proteins, names)
        model, alphabet, model_name = load_esm2(args.weights, device)
    except (ValueError, FileNotFoundError) as exc:
        raise UserError(str(exc)) from exc
    have = [i for i, p in enumerate(chosen) if p is not None]
    log.info("%s: %d of %d genes have a protein (%d proteins in %d records); %d get a zero "
             "vector", args.proteins, len(have), len(genes), len(gene_proteins.proteins),
             gene_proteins.n_records, len(genes) - len(have))
    d = model.embed_dim
    embeddings = torch.zeros(len(genes), d, dtype=torch.float32)
    if have:
        emb, stats = embed_sequences(model, alphabet, [chosen[i].sequence for i in have],
                                     repr_layer=args.repr_layer, batch_tokens=args.batch_tokens,
                                     max_residues=args.max_residues, device=device)
        embeddings[have] = emb
        log.info("embedded %d proteins (%d residues, %d windows, %d batches) in %.1f s: %.0f "
                 "residues/s on %s", stats.n_proteins, stats.n_residues, stats.n_windows,
                 stats.n_batches, stats.seconds, stats.residues_per_second, device)
    layer = args.repr_layer if args.repr_layer >= 0 else model.num_layers + 1 + args.repr_layer
    aliases = [[names[i]] if names else [] for i in range(len(genes))]
    for i, p in enumerate(chosen):
        if p is not None:
            aliases[i] += [a for a in (p.symbol, *p.gene_ids) if a]
    save_gene_embeddings(args.output, {
        "genes": genes,
        "aliases": aliases,
        "embeddings": embeddings,
        "has_protein": torch.tensor([p is not None for p in chosen], dtype=torch.bool),
        "protein_ids": [p.protein_id if p else "" for p in chosen],
        "protein_lengths": torch.tensor([len(p.sequence) if p else 0 for p in chosen],
                                        dtype=torch.int64),
        "model": model_name,
        "repr_layer": int(layer),
        "n_layers_used": int(layer),
        "embed_dim": int(d),
        "max_residues": int(args.max_residues),
        "long_proteins": "mean over half-overlapping windows, each residue weighted equally",
        "proteins_fasta": str(args.proteins),
    })
    log.info("wrote %s: %d genes x %d", args.output, len(genes), d)
    return 0


def run_fetch(args: argparse.Namespace) -> int:
    from bulkfm.cli import UserError
    from bulkfm.embed.fetch import fetch_fasta

    try:
        fetch_fasta(args.url, Path(args.output), retries=args.retries, timeout=args.timeout)
    except (ValueError, OSError) as exc:
        raise UserError(f"{args.url}: {exc}") from exc
    return 0
