"""Harmonization throughput and memory at 100,000 samples, offline (no LLM), via the CLI.

    python benchmarks/metadata_throughput.py [--samples 100000] [--embedding] [--data ../shared/data]

Samples are drawn (seeded) from the real attribute sets of ../shared/data (MetaSRA BioSample
records, ENA human runs, txt2onto GEO texts) with a Zipf-like skew, as studies repeat a
template; every sample gets its own run id and a unique title ('<source> rep <i>'), the worst
case for dedupe of the free text. Written as an sra/metadata.parquet-style table, then
`bulkfm metadata harmonize` runs in a subprocess; wall time and peak RSS of that process are
reported (2-core machine).
"""

from __future__ import annotations

import argparse
import gzip
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def pool(data: Path) -> list[dict]:
    out = []
    for x in gzip.open(data / "metadata_labelled" / "metasra_labelled.dev.jsonl.gz", "rt"):
        out.append({"attributes": json.loads(x)["attributes"], "text": ""})
    seen = set()
    for x in gzip.open(data / "metadata_labelled" / "txt2onto_geo_labelled.dev.jsonl.gz", "rt"):
        t = json.loads(x)["text_processed"]
        if t not in seen:
            seen.add(t)
            out.append({"attributes": {}, "text": t})
    df = pd.read_csv(data / "sra_metadata_raw" / "pysradb_test_search" / "ena_test_verbosity_3.csv.gz", dtype=str,
                     keep_default_na=False)
    for r in df[df.tax_id == "9606"].to_dict("records"):
        attrs = {k: r[k] for k in ("cell_line", "cell_type", "dev_stage", "sex", "isolation_source", "sample_title")
                 if r.get(k)}
        out.append({"attributes": attrs, "text": ""})
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=100_000)
    ap.add_argument("--embedding", action="store_true")
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    args = ap.parse_args()
    p = pool(Path(args.data))
    rng = np.random.default_rng(0)
    w = 1 / np.arange(1, len(p) + 1) ** 0.8
    pick = rng.choice(len(p), size=args.samples, p=w / w.sum())
    rows = []
    for i, j in enumerate(pick):
        src = p[j]
        rows.append({"run": f"SRR{10_000_000 + i}", "study": f"SRP{j:05d}", "attributes": json.dumps(src["attributes"]),
                     "text": src["text"], "title": f"{src['attributes'].get('source_name', 'sample')} rep {i}",
                     "library_strategy": "RNA-Seq", "library_selection": "cDNA", "library_layout": "PAIRED",
                     "instrument": "Illumina HiSeq 2500"})
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "metadata.parquet"
        pd.DataFrame(rows).to_parquet(src, index=False)
        cmd = [str(Path(sys.executable).with_name("bulkfm")), "metadata", "harmonize", str(src), "-o",
               str(Path(d) / "h.parquet"), "--wide", str(Path(d) / "h.tsv"), "--review", str(Path(d) / "r.tsv"),
               "--llm-report", str(Path(d) / "llm.json"), "--threads", "2"]
        if not args.embedding:
            cmd.append("--no-embedding")
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stderr=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        rep = json.loads((Path(d) / "llm.json").read_text())
        n_out = len(pd.read_parquet(Path(d) / "h.parquet", columns=["sample_id"]))
    st = rep["stats"]
    print("| samples | unique attribute sets | embedding | wall s | samples/s | peak RSS MB | output rows | would-be LLM calls/sample |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|")
    print(f"| {args.samples:,} | {st['unique_sets']:,} | {'on' if args.embedding else 'off'} | {wall:.1f} | "
          f"{args.samples / wall:,.0f} | {rss:,.0f} | {n_out:,} | {st['llm_questions'] / args.samples:.4f} |")


if __name__ == "__main__":
    main()
