"""Generator benchmark on real data: TCGA (quality, held-out conditions), Pickrell (sex swap),
TCGA under two processings (a real technical factor), and speed.

    python benchmarks/generate_tcga.py --data ../shared/data --workdir /tmp/bulkfm-gen \
        [--runs tcga pickrell two_studies] [--steps 2500] [--genes 1000]

Each run converts its inputs to a bulkfm matrix store (log1p; linear RSEM / counts -> log1p
CPM), writes a metadata TSV (sample_id + fields [+ study] + participant), then calls exactly
`bulkfm train-generator`, `bulkfm evaluate-generator` and `bulkfm generate` (10,000 profiles)
and prints Markdown tables with wall times and peak RSS. Held out: whole participants
(TCGA has no studies besides the cohort; with fewer than three studies the trainer holds out
participants) and the smallest combination whose values occur elsewhere (CHOL x normal:
normals are seen only from STAD in training). two_studies also swaps each sample's processing
by counterfactual (study=rnasum_counts) and scores the held-out RSEM profiles against the
same tumours' real RNAsum profiles.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bulkfm.matrix.store import MatrixWriter, open_matrix

SAMPLE_TYPE = {"Primary Solid Tumor": "tumour", "Solid Tissue Normal": "normal",
               "01": "tumour", "11": "normal"}


def write_store(path: Path, genes: list[str], samples: list[str], x: np.ndarray) -> Path:
    if (path / "matrix.json").exists():
        return path
    w = MatrixWriter(path, pd.DataFrame({"gene_id": genes, "gene_name": genes}),
                     pd.DataFrame({"sample_id": samples}), layers=("log1p_tpm",))
    for start in range(0, len(samples), 256):
        w.write(start, log1p_tpm=x[start:start + 256].astype(np.float32))
    return w.close()


def tcga(data: Path, work: Path) -> tuple[Path, Path]:
    d = data / "tcga_rnaseqv2_6cohorts"
    meta = pd.read_csv(d / "samples.tsv", sep="\t")
    m = open_matrix(d / "expression_rsem_normalized.genes_x_samples.parquet")  # log1p(RSEM)
    pos = {s: i for i, s in enumerate(m.samples)}
    x = m.rows([pos[s] for s in meta.sample_id])
    store = write_store(work / "tcga_matrix", m.genes, meta.sample_id.tolist(), x)
    tsv = work / "tcga_meta.tsv"
    pd.DataFrame({"sample_id": meta.sample_id, "disease": meta.cohort,
                  "sample_type": meta.sample_type.map(SAMPLE_TYPE),
                  "participant": meta.participant}).to_csv(tsv, sep="\t", index=False)
    return store, tsv


def pickrell(data: Path, work: Path) -> tuple[Path, Path]:
    d = data / "pickrell_lcl_counts_sex"
    c = pd.read_csv(d / "counts.tsv.gz", sep="\t", index_col=0)
    s = pd.read_csv(d / "samples.tsv", sep="\t")
    x = c.to_numpy(np.float64).T
    x = np.log1p(x / x.sum(1, keepdims=True) * 1e6)
    store = write_store(work / "pickrell_matrix", c.index.tolist(), c.columns.tolist(), x)
    tsv = work / "pickrell_meta.tsv"
    pd.DataFrame({"sample_id": s.sample_id, "sex": s.gender}).to_csv(tsv, sep="\t", index=False)
    return store, tsv


def two_studies(data: Path, work: Path) -> tuple[Path, Path]:
    """RNASeqV2 RSEM (log1p) and RNAsum raw counts (log1p CPM) of TCGA on shared Ensembl genes:
    study = processing, a real batch factor; participants overlap across the two."""
    d = data / "tcga_rnaseqv2_6cohorts"
    meta = pd.read_csv(d / "samples.tsv", sep="\t")
    m = open_matrix(d / "expression_rsem_normalized.genes_x_samples.parquet")
    gt = pd.read_csv(d / "genes.tsv.gz", sep="\t", dtype=str)
    ens = dict(zip(gt["gene"], gt["ensembl_gene_id_orgHsEgDb_3.16"], strict=True))
    pos = {s: i for i, s in enumerate(m.samples)}
    xa = m.rows([pos[s] for s in meta.sample_id])
    frames, cohort_b = [], {}
    for f in sorted((data / "tcga_counts_rnasum").glob("TCGA_*_Counts.exp.gz")):
        frame = pd.read_csv(f, sep="\t", index_col=0)
        frames.append(frame)
        cohort_b.update(dict.fromkeys(frame.columns, f.name.split("_")[1]))  # TCGA_<cohort>_
    counts = pd.concat(frames, axis=1)
    cols = {}
    for j, g in enumerate(m.genes):
        e = ens.get(g)
        if isinstance(e, str) and e in counts.index and e not in cols:
            cols[e] = j
    genes = list(cols)
    xb = counts.loc[genes].to_numpy(np.float64).T
    xb = np.log1p(xb / xb.sum(1, keepdims=True) * 1e6)
    x = np.vstack([xa[:, list(cols.values())], xb])
    ids_b = [f"{s}|rnasum" for s in counts.columns]
    store = write_store(work / "two_matrix", genes, meta.sample_id.tolist() + ids_b, x)
    tsv = work / "two_meta.tsv"
    pd.DataFrame({
        "sample_id": meta.sample_id.tolist() + ids_b,
        "disease": meta.cohort.tolist() + [cohort_b[s] for s in counts.columns],
        "sample_type": meta.sample_type.map(SAMPLE_TYPE).tolist()
        + [SAMPLE_TYPE.get(s.split("-")[3][:2], "unknown") for s in counts.columns],
        "study": ["rnaseqv2_rsem"] * len(meta) + ["rnasum_counts"] * len(ids_b),
        "participant": meta.participant.tolist() + ["-".join(s.split("-")[:3])
                                                    for s in counts.columns],
    }).to_csv(tsv, sep="\t", index=False)
    return store, tsv


def processing_swap(out: Path, matrix: Path, meta: Path, work: Path) -> dict[str, float]:
    """two_studies: `bulkfm generate --counterfactual` each sample with study=rnasum_counts and
    score the RSEM profiles of held-out participants against the same tumours' real RNAsum
    profiles (a paired truth), next to RSEM + the mean per-gene RSEM -> RNAsum shift of the
    training pairs (additive batch correction)."""
    cf_path = work / f"{out.name}_swap.parquet"
    run(["bulkfm", "generate", str(out), "--counterfactual", str(matrix), "--set",
         "study=rnasum_counts", "--metadata", str(meta), "-o", str(cf_path)])
    cf = pd.read_parquet(cf_path).set_index("sample_id")
    genes = [c for c in cf.columns if c.startswith("ENSG")]
    split = pd.read_csv(out / "split.tsv", sep="\t").set_index("sample_id")["split"]
    m = open_matrix(matrix)
    pos, gi = {s: i for i, s in enumerate(m.samples)}, [m.genes.index(g) for g in genes]
    other = {s.split("|")[0][:15]: s for s in cf.index if s.endswith("|rnasum")}
    pairs = [(s, other[s[:15]]) for s in cf.index
             if not s.endswith("|rnasum") and s[:15] in other]

    def rows(ids: list[str]) -> np.ndarray:
        return m.rows([pos[i] for i in ids])[:, gi]

    def r(a: np.ndarray, b: np.ndarray) -> float:
        a, b = a - a.mean(1, keepdims=True), b - b.mean(1, keepdims=True)
        return float(((a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1))).mean())

    held = [p for p in pairs if split[p[0]] == split[p[1]] == "heldout"]
    train = [p for p in pairs if split[p[0]] == split[p[1]] == "train"]
    xa, xb = rows([a for a, _ in held]), rows([b for _, b in held])
    y = cf.loc[[a for a, _ in held], genes].to_numpy()
    base = xa + (rows([b for _, b in train]) - rows([a for a, _ in train])).mean(0)
    return {"pairs": len(held), "r_counterfactual": r(y, xb), "r_additive": r(base, xb),
            "r_unchanged": r(xa, xb), "mse_counterfactual": float(((y - xb) ** 2).mean()),
            "mse_additive": float(((base - xb) ** 2).mean())}


def run(cmd: list[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{p.stderr[-3000:]}")
    return time.perf_counter() - t0, p.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--runs", nargs="+", default=["tcga", "pickrell", "two_studies"],
                    choices=["tcga", "pickrell", "two_studies"])
    ap.add_argument("--steps", type=int, default=2500)
    ap.add_argument("--genes", type=int, default=1000)
    ap.add_argument("--n-generate", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=0, help="training seed (also the hold-out draw)")
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    cfg = {"seed": args.seed, "steps": args.steps, "max_genes": args.genes,
           "checkpoint_every": 500,
           "model": {"encoder_hidden": [256, 128], "decoder_hidden": 128}}
    rows = []
    for name in args.runs:
        matrix, meta = {"tcga": tcga, "pickrell": pickrell,
                        "two_studies": two_studies}[name](args.data, args.workdir)
        out = args.workdir / f"{name}_s{args.seed}_run"
        t_train, _ = run(["bulkfm", "train-generator", "--matrix", str(matrix), "--metadata",
                          str(meta), "--out", str(out), "--config-json", json.dumps(cfg),
                          "--no-progress"])
        rss_train = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        t_eval, stdout = run(["bulkfm", "evaluate-generator", str(out), "--matrix", str(matrix),
                              "--metadata", str(meta), "--seed", str(args.seed)])
        result = json.loads(stdout.strip().splitlines()[-1])
        sps = pd.read_csv(out / "metrics.csv")["samples_per_s"].iloc[-1]
        # Generation speed: N profiles of the first held-out condition.
        q = args.workdir / f"{name}_query.tsv"
        fields = [c for c in pd.read_csv(meta, sep="\t", nrows=1).columns
                  if c not in ("sample_id", "participant", "study")]
        first = pd.read_csv(meta, sep="\t").iloc[[0]][fields]
        first.to_csv(q, sep="\t", index=False)
        gen_out = args.workdir / f"{name}_s{args.seed}_gen.parquet"
        t_gen, _ = run(["bulkfm", "generate", str(out), "--query", str(q), "--n",
                        str(args.n_generate), "-o", str(gen_out)])
        rss_all = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        if name == "two_studies":
            result["processing_swap"] = processing_swap(out, matrix, meta, args.workdir)
        metrics = args.workdir / f"{name}_s{args.seed}_metrics.json"
        metrics.write_text(json.dumps(result, indent=2))
        rows.append((name, result, t_train, sps, t_eval, t_gen, rss_train, rss_all))
        print(f"## {name}\n\n```json\n{json.dumps(result)}\n```\n", flush=True)

    print("| run | seen gen r / train-mean r | top-50 | unseen gen r / additive r | top-50 | "
          "RF AUC (real training samples) | kNN recall | label ratio | var ratio | "
          "energy (gaussian) | bio->study probe |")
    print("|---|---|---|---|---|---:|---:|---:|---:|---|---:|")
    for name, r, *_ in rows:
        s, u = r.get("seen") or {}, r.get("unseen") or {}

        def pair(d, a, b):
            return f"{d.get(a)} / {d.get(b)}" if d else "—"

        g = r["realism_baselines"]["gaussian_noise"]
        t = r["realism_baselines"].get("train_samples", {})
        probe = (r.get("probes") or {}).get("study", {}).get("bio", "—")
        print(f"| {name} | {pair(s, 'generator_r', 'train_mean_r')} | "
              f"{pair(s, 'generator_r_top50', 'train_mean_r_top50')} | "
              f"{pair(u, 'generator_r', 'additive_r')} | "
              f"{pair(u, 'generator_r_top50', 'additive_r_top50')} | "
              f"{r['auc_real_vs_generated']} ({t.get('auc_real_vs_generated')}) | "
              f"{r['knn_recall']} | "
              f"{r['label_accuracy_generated_over_real']} | {r['variance_ratio_median']} | "
              f"{r['energy_distance']} ({g['energy_distance']}) | {probe} |")
    for name, r, *_ in rows:
        if "processing_swap" in r:
            print(f"\nprocessing swap RSEM -> RNAsum (held-out pairs): {r['processing_swap']}")
    print("\n| run | train wall (s) | samples/s | evaluate (s) | generate "
          f"{args.n_generate:,} (s, incl. start-up) | peak RSS so far (MB) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, _, t_train, sps, t_eval, t_gen, _, rss in rows:
        print(f"| {name} | {t_train:.1f} | {sps} | {t_eval:.1f} | {t_gen:.1f} | {rss:.0f} |")


if __name__ == "__main__":
    main()
