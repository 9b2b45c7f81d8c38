"""ESM2 embedding throughput on the CPU (residues/s) and an estimate for a whole proteome.

    python benchmarks/embed_esm2.py --threads 2

Proteins: the 59 real sequences bundled for the demo (resources/proteins/, 163-1,663 aa).
Models: ESM2 modules built in memory with random weights (no download; speed does not depend on
the weight values): a tiny 2-layer 64-d model (the tests' size) and the real shapes of
esm2_t6_8M_UR50D (6 x 320, 20 heads), esm2_t12_35M_UR50D (12 x 480) and, on a few proteins,
esm2_t33_650M_UR50D (33 x 1280). Each runs ``bulkfm.embed.esm2.embed_sequences`` (length-sorted
token-budget batches, windows > 1022 aa) after one warm-up batch.

Other jobs may share the cores, so CPU seconds are reported beside wall seconds; "CPU s /
threads" is what the same work takes with the cores to itself. The proteome estimate uses it
and scales by residues: 20,000 canonical human proteins x 560 aa (the
GENCODE/UniProt canonical mean is about 550-570 aa) = 11.2 M residues. Attention cost grows with
length, so long proteins cost more per residue than the mean; treat it as a lower bound.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import torch

SHAPES = {  # name: (layers, dim, heads)
    "tiny (tests)": (2, 64, 4),
    "esm2_t6_8M_UR50D": (6, 320, 20),
    "esm2_t12_35M_UR50D": (12, 480, 20),
    "esm2_t33_650M_UR50D": (33, 1280, 20),
}
PROTEOME_RESIDUES = 20_000 * 560


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--fasta", default=str(Path(__file__).resolve().parents[1] / "resources" /
                                          "proteins" / "demo_chr19_proteins.fasta.gz"))
    p.add_argument("--batch-tokens", type=int, default=4096)
    p.add_argument("--big-proteins", type=int, default=6,
                   help="proteins for the 650M shape (it is slow on a CPU)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    import esm
    from esm.model.esm2 import ESM2

    from bulkfm.embed.esm2 import embed_sequences
    from bulkfm.embed.proteins import canonical_proteins, read_fasta

    seqs = [q.sequence for q in canonical_proteins(read_fasta(args.fasta)).proteins]
    alphabet = esm.Alphabet.from_architecture("ESM-1b")
    rows = []
    for name, (layers, dim, heads) in SHAPES.items():
        torch.manual_seed(0)
        model = ESM2(num_layers=layers, embed_dim=dim, attention_heads=heads, alphabet=alphabet,
                     token_dropout=True).eval()
        n_params = sum(t.numel() for t in model.parameters())
        use = seqs if layers < 30 else sorted(seqs, key=len)[len(seqs) // 2:][: args.big_proteins]
        embed_sequences(model, alphabet, use[:1], batch_tokens=args.batch_tokens, progress=False)
        u0, t = cpu_seconds(), time.perf_counter()
        _, stats = embed_sequences(model, alphabet, use, batch_tokens=args.batch_tokens,
                                   progress=False)
        secs, cpu = time.perf_counter() - t, cpu_seconds() - u0
        residues = sum(map(len, use))  # protein residues (windows overlap: more are computed)
        # On a shared machine wall time depends on the neighbours; CPU time / threads is what
        # the same work takes with the cores to itself.
        idle_rate = residues / (cpu / args.threads)
        rows.append((name, n_params, len(use), residues, stats.n_windows, secs, cpu,
                     residues / secs, idle_rate, PROTEOME_RESIDUES / idle_rate / 3600))
        print(rows[-1], file=sys.stderr, flush=True)
        del model
    print(f"\nESM2 embedding on CPU, {args.threads} threads, batch_tokens {args.batch_tokens}, "
          "random weights in the real shapes\n")
    print("| model shape | parameters | proteins (windows) | residues | wall s | CPU s | "
          "residues/s (wall) | residues/s (CPU s / threads) | 20k-protein proteome, hours "
          "(est., from CPU) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, n_params, n, res, n_win, secs, cpu, rate, idle_rate, hours in rows:
        print(f"| {name} | {n_params / 1e6:.1f} M | {n} ({n_win}) | {res:,} | {secs:.1f} | "
              f"{cpu:.1f} | {rate:,.0f} | {idle_rate:,.0f} | {hours:.1f} |")


if __name__ == "__main__":
    main()
