"""Same outputs before and after a change to the harmonizer: run the metadata commands of one
source tree on the dev labelled sets (and a table that reaches the per-sample and rule steps),
then compare two such runs byte for byte.

    git archive REV src resources | tar -x -C /tmp/before      # the tree before the change
    python benchmarks/metadata_same_outputs.py run --tree /tmp/before --out /tmp/same/before
    python benchmarks/metadata_same_outputs.py run --tree . --out /tmp/same/after
    python benchmarks/metadata_same_outputs.py compare /tmp/same/before /tmp/same/after

``run`` writes, with one CPU thread: ``bulkfm metadata harmonize`` (Parquet, wide TSV, review
queue, report) on the MetaSRA and txt2onto dev sets as evaluate reads them, with and without
embedding; on a 6,000-sample table in the shape of sra/metadata.parquet (the throughput
benchmark's pool, seed 0, plus titles, descriptions, SRA technical columns, perturbations);
and once with a curator's file read back (``--reviewed``); then ``bulkfm metadata evaluate ...
--folds 5`` with and without embedding. ``compare`` says which files differ (the reports'
wall times aside) and exits 1 if any does.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1] / "shared" / "data"
PERTURBATIONS = ("doxorubicin 1uM 24h", "TP53 shRNA", "CRISPR KO of KRAS", "LPS 100 ng/ml 6h", "control", "DMSO",
                 "infected with influenza A", "hypoxia 1% O2 48h", "overexpression of MYC", "untreated",
                 "tamoxifen 5 uM for 3 days")


def dev_inputs(data: Path, out: Path) -> list[Path]:
    """The dev sets as harmonize inputs, with the ids evaluate gives them."""
    lab = data / "metadata_labelled"
    metasra, txt2onto = out / "metasra_dev.jsonl", out / "txt2onto_dev.jsonl"
    with open(metasra, "w") as f:
        for i, line in enumerate(gzip.open(lab / "metasra_labelled.dev.jsonl.gz", "rt")):
            r = json.loads(line)
            f.write(json.dumps({"sample_id": r.get("sample_accession") or str(i),
                                "attributes": r.get("attributes") or {}}) + "\n")
    with open(txt2onto, "w") as f:
        for line in gzip.open(lab / "txt2onto_geo_labelled.dev.jsonl.gz", "rt"):
            r = json.loads(line)
            f.write(json.dumps({"sample_id": r["gsm"], "text": r["text_processed"]}) + "\n")
    return [metasra, txt2onto]


def sra_table(data: Path, out: Path, n: int = 6000) -> Path:
    sys.path.insert(0, str(HERE))
    from metadata_throughput import pool

    p = pool(data)
    rng = np.random.default_rng(0)
    w = 1 / np.arange(1, len(p) + 1) ** 0.8
    rows = []
    for i, j in enumerate(rng.choice(len(p), size=n, p=w / w.sum())):
        a = dict(p[j]["attributes"])
        if i % 7 == 0:
            a["treatment"] = PERTURBATIONS[i % len(PERTURBATIONS)]
        if i % 11 == 0:
            a["dose"], a["time"] = "10 uM", "day 3"
        rows.append({"run": f"SRR{10_000_000 + i}", "attributes": json.dumps(a), "text": p[j]["text"],
                     "title": f"{p[j]['attributes'].get('source_name', 'sample')} rep {i}",
                     "description": ("", "female liver biopsy", "HeLa cells", "lung adenocarcinoma")[i % 4],
                     "library_strategy": ("RNA-Seq", "rna-seq", "OTHER")[i % 3], "library_selection": "cDNA",
                     "library_layout": ("PAIRED", "paired-end", "SINGLE", "single", "weird")[i % 5],
                     "instrument": "Illumina HiSeq 2500"})
    path = out / "extra.parquet"
    pd.DataFrame(rows).to_parquet(path, index=False)
    return path


def curated(review: Path, out: Path) -> Path:
    """A curator's file: the first 25 proposals accepted, 15 unanswered tissues set to liver."""
    rows = list(csv.DictReader(open(review, encoding="utf-8"), delimiter="\t"))
    n = 0
    for r in rows:
        if r["proposed_id"] and n < 25:
            r["reviewed_id"], n = r["proposed_id"], n + 1
        elif not r["proposed_id"] and r["field"] == "tissue" and n < 40:
            r["reviewed_id"], n = "UBERON:0002107", n + 1
    path = out / "reviewed.tsv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, list(rows[0]), delimiter="\t", lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    return path


def run(tree: Path, out: Path, data: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    inputs = out / "inputs"
    inputs.mkdir(exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(tree.resolve() / "src"), "OMP_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    bulkfm = str(Path(sys.executable).with_name("bulkfm"))

    def harmonize(src: Path, name: str, *extra: str) -> None:
        subprocess.run([bulkfm, "metadata", "harmonize", str(src), "-o", str(out / f"{name}.parquet"),
                        "--wide", str(out / f"{name}.tsv"), "--review", str(out / f"{name}.review.tsv"),
                        "--llm-report", str(out / f"{name}.report.json"), "--threads", "1", *extra],
                       check=True, env=env, cwd=tree, stderr=subprocess.DEVNULL)

    for src in [*dev_inputs(data, inputs), sra_table(data, inputs)]:
        harmonize(src, f"{src.stem}.noemb", "--no-embedding")
        harmonize(src, f"{src.stem}.emb")
    harmonize(inputs / "metasra_dev.jsonl", "metasra_dev.reviewed", "--no-embedding",
              "--reviewed", str(curated(out / "metasra_dev.noemb.review.tsv", inputs)))
    lab = data / "metadata_labelled"
    for name, extra in (("noemb", ["--no-embedding"]), ("emb", [])):
        with open(out / f"eval.{name}.txt", "w") as fh:
            subprocess.run([bulkfm, "metadata", "evaluate", str(lab / "metasra_labelled.dev.jsonl.gz"),
                            str(lab / "txt2onto_geo_labelled.dev.jsonl.gz"), "--folds", "5", "--threads", "1",
                            "--out", str(out / f"eval.{name}.json"), "--markdown", str(out / f"eval.{name}.md"),
                            *extra], check=True, env=env, cwd=tree, stdout=fh, stderr=subprocess.DEVNULL)


def compare(a: Path, b: Path) -> int:
    differ = 0
    for fa in sorted(p for p in a.iterdir() if p.is_file()):
        fb = b / fa.name
        if fa.name.endswith(".report.json") and fb.is_file():
            ja, jb = json.loads(fa.read_text()), json.loads(fb.read_text())
            for j in (ja, jb):  # wall times
                j.pop("seconds")
                (j.get("embedding") or {}).pop("embed_seconds", None)
            same = ja == jb
        else:
            same = fb.is_file() and fa.read_bytes() == fb.read_bytes()
        print(f"{'same' if same else 'DIFFERS'}  {fa.name}")
        differ += not same
    print(f"{differ} of {sum(1 for p in a.iterdir() if p.is_file())} files differ")
    return 1 if differ else 0


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--tree", default=str(HERE.parent))
    r.add_argument("--out", required=True)
    r.add_argument("--data", default=str(DATA))
    c = sub.add_parser("compare")
    c.add_argument("a")
    c.add_argument("b")
    args = ap.parse_args()
    if args.cmd == "run":
        run(Path(args.tree), Path(args.out), Path(args.data))
    else:
        sys.exit(compare(Path(args.a), Path(args.b)))


if __name__ == "__main__":
    main()
