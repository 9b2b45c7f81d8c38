"""LLM calls per sample on the real SRA records in ../shared/data (no endpoint needed: with none
configured the harmonizer still counts the unique questions it *would* ask; each is one call).

    python benchmarks/metadata_llm_calls.py [--data ../shared/data] [--no-embedding]

Sources: MetaSRA's hand-picked BioSample records (attributes exactly as in BioSample) and the
human runs of an ENA search response (sample_* columns as ENA returns them).
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd

from bulkfm.metadata.config import load_config
from bulkfm.metadata.embedding import Embedder
from bulkfm.metadata.ontology import load_index
from bulkfm.metadata.pipeline import Harmonizer, RawRecord

ENA_ATTRS = ("cell_line", "cell_type", "dev_stage", "sex", "host_body_site", "isolation_source", "sample_description",
             "sample_title", "bio_material", "tissue_type", "tissue_lib", "disease", "sample_material", "host_phenotype",
             "host_status", "experimental_factor", "age", "treatment")


def metasra(data: Path) -> list[RawRecord]:
    rows = [json.loads(x) for x in gzip.open(data / "metadata_labelled" / "metasra_labelled.dev.jsonl.gz", "rt")]
    return [RawRecord(r["sample_accession"], r["attributes"]) for r in rows]


def ena(data: Path) -> list[RawRecord]:
    df = pd.read_csv(data / "sra_metadata_raw" / "pysradb_test_search" / "ena_test_verbosity_3.csv.gz", dtype=str,
                     keep_default_na=False)
    df = df[df.tax_id == "9606"]
    out = []
    for r in df.to_dict("records"):
        attrs = {k: r[k] for k in ENA_ATTRS if k in r and r[k]}
        sra = {"title": r.get("experiment_title", ""), "library_strategy": r.get("library_strategy", ""),
               "library_selection": r.get("library_selection", ""), "library_layout": r.get("library_layout", ""),
               "instrument": r.get("instrument_model", "")}
        out.append(RawRecord(r["run_accession"], attrs, sra=sra))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--no-embedding", action="store_true")
    args = ap.parse_args()
    data = Path(args.data)
    cfg = load_config(None)
    index = load_index()
    rows = ["| records | samples | unique attribute sets | unique LLM questions (= calls) | calls per sample | seconds |",
            "|---|---:|---:|---:|---:|---:|"]
    for name, recs in (("MetaSRA BioSample (dev)", metasra(data)), ("ENA search, human runs", ena(data))):
        emb = None if args.no_embedding else Embedder(index, synonyms_for=cfg.embedding_synonyms)
        cfg = replace(cfg, settings=replace(cfg.settings, embedding=not args.no_embedding))
        h = Harmonizer(index, cfg.settings, cfg.llm, emb)
        t0 = time.perf_counter()
        n = sum(1 for _ in h.harmonize(recs))
        q = h.stats["llm_questions"]
        rows.append(f"| {name} | {n} | {h.stats['unique_sets']} | {q} | {q / n:.3f} | {time.perf_counter() - t0:.1f} |")
    print(f"embedding: {'off' if args.no_embedding else 'on'}; LLM threshold {cfg.settings.llm_threshold}")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
