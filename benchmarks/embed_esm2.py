"""ESM2 embedding throughput on the CPU (residues/s) and an estimate for a whole proteome.

    python benchmarks/embed_esm2.py --threads 2

Proteins: the 59 real sequences bundled for the demo (resources/proteins/, 163-1,663 aa).
Models: ESM2 modules built in memory with random weights (no download; speed does not depend on
the weight values): a tiny 2-layer 64-d model (the tests' size) and the real shapes of
esm2_t6_8M_UR50D (6 x 320, 20 heads), esm2_t12_35M_UR50D (12 x 480) and, on a few proteins,
esm2_t33_650M_UR50D (33 x 1280). Each runs ``bulkfm.embed.esm2.embed_sequences`` (length-sorted
token-budget batches, windows > 1022 aa) after one warm-up batch.

The proteome estimate scales by residues: 20,000 canonical human proteins x 560 aa (the
GENCODE/UniProt canonical mean is about 550-570 aa) = 11.2 M residues. Attention cost grows with
length, so long proteins cost more per residue than the mean; treat it as a lower bound.
"""

from __future__ import annotations

import argparse
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
        t = time.perf_counter()
        _, stats = embed_sequences(model, alphabet, use, batch_tokens=args.batch_tokens,
                                   progress=False)
        secs = time.perf_counter() - t
        rate = stats.n_residues / secs
        rows.append((name, n_params, len(use), stats.n_residues, secs, rate,
                     PROTEOME_RESIDUES / rate / 3600))
        del model
    print(f"\nESM2 embedding on CPU, {args.threads} threads, batch_tokens {args.batch_tokens}, "
          "random weights in the real shapes\n")
    print("| model shape | parameters | proteins | residues | seconds | residues/s | "
          "20k-protein proteome, hours (est.) |")
    print("|---|---|---|---|---|---|---|")
    for name, n_params, n, res, secs, rate, hours in rows:
        print(f"| {name} | {n_params / 1e6:.1f} M | {n} | {res:,} | {secs:.1f} | {rate:,.0f} | "
              f"{hours:.2f} |")


if __name__ == "__main__":
    main()
