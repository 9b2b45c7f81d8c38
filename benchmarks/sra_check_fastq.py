"""check_fastq cost vs salmon quant on the same reads (real ENCODE chr19 reads, repeated).

Builds paired gzip FASTQ of N read pairs by repeating the 10,000 real ENCODE pairs (names made
unique), indexes the chr19 transcriptome once, then times ``check_fastq`` and ``salmon quant -p 2``.
chr19-only salmon is much faster per read than a whole-transcriptome index, so the overhead
percentage here is an upper bound. Prints a markdown table.

    python benchmarks/sra_check_fastq.py [--data ../shared/data] [--pairs 200000 1000000]
"""

from __future__ import annotations

import argparse
import gzip
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bulkfm.sra.fastq import check_fastq


def make_pair(src: list[Path], n: int, out: Path) -> list[Path]:
    recs = [gzip.decompress(p.read_bytes()).splitlines(keepends=True) for p in src]
    paths = []
    for mate, lines in enumerate(recs, 1):
        path = out / f"bench_{n}_{mate}.fastq.gz"
        with gzip.open(path, "wb", compresslevel=6) as fh:
            written, rep = 0, 0
            while written < n:
                take = min(n - written, len(lines) // 4)
                block = []
                for i in range(take):
                    h = lines[4 * i].split()[0] + b":r%d\n" % rep
                    block += [h, lines[4 * i + 1], lines[4 * i + 2], lines[4 * i + 3]]
                fh.write(b"".join(block))
                written += take
                rep += 1
        paths.append(path)
    return paths


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    ap.add_argument("--pairs", type=int, nargs="+", default=[200_000, 1_000_000])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    d = args.data / "encode_chr19_rnaseq"
    src = [d / f"ENCSR653DFZ_rep1_chr19_10000reads_R{i}.fastq.gz" for i in (1, 2)]
    if not shutil.which("salmon"):
        print("salmon not on PATH", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        tmp_p = Path(tmp)
        t = time.perf_counter()
        subprocess.run(["salmon", "index", "-t", str(d / "Homo_sapiens.GRCh38.cdna.all.chr19_ERCC_phix.fa.gz"),
                        "-i", str(tmp_p / "idx"), "-p", str(args.threads)], check=True, capture_output=True)
        print(f"salmon index (chr19 cDNA, 11,567 seqs): {time.perf_counter() - t:.1f} s", file=sys.stderr)
        rows = []
        for n in args.pairs:
            files = make_pair(src, n, tmp_p)
            mb = sum(f.stat().st_size for f in files) / 1e6
            t = time.perf_counter()
            st = check_fastq(files, f"bench{n}")
            t_check = time.perf_counter() - t
            assert st.reads == n
            t = time.perf_counter()
            subprocess.run(["salmon", "quant", "-i", str(tmp_p / "idx"), "-l", "A", "-1", str(files[0]), "-2", str(files[1]),
                            "-p", str(args.threads), "--validateMappings", "-o", str(tmp_p / f"q{n}")], check=True, capture_output=True)
            t_salmon = time.perf_counter() - t
            rows.append((n, mb, t_check, n / t_check / 1e6, t_salmon, 100 * t_check / t_salmon))
            for f in files:
                f.unlink()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"| read pairs | gz MB | check_fastq s | M pairs/s | salmon quant -p {args.threads} s | check / salmon |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n, mb, tc, rate, ts, pct in rows:
        print(f"| {n:,} | {mb:.0f} | {tc:.2f} | {rate:.2f} | {ts:.1f} | {pct:.1f} % |")
    print(f"\npeak RSS of this process (includes building the inputs): {rss:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
