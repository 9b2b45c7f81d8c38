"""Default `bulkfm train` + `bulkfm evaluate` on every real expression matrix, >= 3 seeds (CPU).

    python benchmarks/train_datasets.py --data ../shared/data --workdir /tmp/bench13 \
        [--datasets tcga6 rnasum pickrell] [--seeds 0 1 2] [--runs default bulkformer transfer]

What a new user does: no config file (``size: auto`` = the cpu preset on a CPU, every other key
at its default), one process with 1 torch thread. Each seed is a new split by group (TCGA
participant; Pickrell: one sample per person) and a new initialisation. Per dataset and seed:
masked-gene PCC / MSE of the model (readout blend), its trunk, the AE alone, kNN and the gene
mean on the held-out test split, and probes (model embedding, its pooled hidden part, AE
latent, PCA-50 of raw log1p refitted per probe fit, and pca_train = the model's own PCA
fitted on its training split). Paired test: two-sided Wilcoxon signed-rank on per-sample
masked-gene PCC, model vs kNN and vs AE, per seed and over all seeds' held-out samples.

Runs:
  default     the defaults on each dataset
  bulkformer  ``size: bulkformer`` on the first dataset, same seeds and splits, beside the
              defaults at the same stage-2 step budget (--bulkformer-steps: a 12-layer,
              256-feature step costs ~15x a default step on this CPU)
  switches    each paper switch alone on the defaults (zero_masked_ree, token_mlp, pool max,
              joint_context, lr 1e-4), first dataset, same splits, stage 2 at
              --bulkformer-steps: which difference to the paper costs what
  single      each RNAsum cohort alone (--cohorts; 36-80 tumours of one cancer), label = the
              TCGA tissue source site where it has >= 8 samples: small homogeneous matrices
              with a hard within-cancer label, none of them used to develop the defaults
  transfer    pretrain (defaults) on RNAsum without KICH, the largest corpus here; then on KICH
              (held out from pretraining) fine-tune with --init vs train from scratch at equal
              steps (early stopping off so both take exactly the same steps), and zero-shot.

Matrices written into WORKDIR: tcga6 = tcga_rnaseqv2_6cohorts (RSEM, SYMBOL|ENTREZ, label =
cohort), rnasum = tcga_counts_rnasum (counts -> CPM, Ensembl, label = cohort), pickrell =
pickrell_lcl_counts_sex (counts -> CPM, Ensembl, label = sex). Finished runs are reused.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.stats import wilcoxon

from bulkfm.evaluate.run import evaluate
from bulkfm.train.config import TrainConfig, from_dict
from bulkfm.train.run import train

METHODS = ["model", "trunk", "ae", "knn", "gene_mean"]
PROBES = ["model", "model_pooled", "pca_train", "ae_latent", "pca_raw"]


def _write(table: pd.DataFrame, labels: pd.DataFrame, work: Path, name: str) -> tuple[Path, Path]:
    work.mkdir(parents=True, exist_ok=True)
    m, lab = work / f"{name}.parquet", work / f"{name}_labels.tsv"
    if not m.exists():
        table.to_parquet(m, index=False)
    labels.to_csv(lab, sep="\t", index=False)
    return m, lab


def _cpm(counts: pd.DataFrame) -> pd.DataFrame:
    x = counts.to_numpy(np.float64)
    return pd.DataFrame((x / x.sum(0, keepdims=True) * 1e6).astype(np.float32),
                        index=counts.index, columns=counts.columns)


def tcga6(data: Path, work: Path) -> tuple[Path, Path]:
    d = data / "tcga_rnaseqv2_6cohorts"
    meta = pd.read_csv(d / "samples.tsv", sep="\t")
    lab = meta.rename(columns={"cohort": "label", "participant": "group"})[
        ["sample_id", "label", "group"]]
    lab.to_csv(work / "tcga6_labels.tsv", sep="\t", index=False)
    return d / "expression_rsem_normalized.genes_x_samples.parquet", work / "tcga6_labels.tsv"


def rnasum_counts(data: Path, cohorts: list[str] | None = None,
                  exclude: tuple[str, ...] = ()) -> tuple[pd.DataFrame, pd.DataFrame]:
    frames, rows = [], []
    for f in sorted((data / "tcga_counts_rnasum").glob("TCGA_*_Counts.exp.gz")):
        cohort = f.name.split("_")[1]
        if cohort in exclude or (cohorts is not None and cohort not in cohorts):
            continue
        c = pd.read_csv(f, sep="\t", index_col=0)
        frames.append(c)
        rows += [{"sample_id": s, "label": cohort, "group": "-".join(s.split("-")[:3]),
                  "sample_type": s.split("-")[3][:2]} for s in c.columns]
    counts = pd.concat(frames, axis=1)
    counts = counts.loc[:, ~counts.columns.duplicated()].fillna(0)
    return counts, pd.DataFrame(rows).drop_duplicates("sample_id")


def _table(cpm: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([pd.Series(cpm.index.astype(str), name="gene"),
                      cpm.reset_index(drop=True)], axis=1)


def rnasum(data: Path, work: Path, exclude: tuple[str, ...] = (), name: str = "rnasum"):
    counts, lab = rnasum_counts(data, exclude=exclude)
    return _write(_table(_cpm(counts)), lab[["sample_id", "label", "group"]], work, name)


def kich(data: Path, work: Path) -> tuple[Path, Path]:
    counts, lab = rnasum_counts(data, cohorts=["KICH"])
    lab["label"] = lab["sample_type"].map({"01": "tumour", "11": "normal"}).fillna("other")
    return _write(_table(_cpm(counts)), lab[["sample_id", "label", "group"]], work, "kich")


def pickrell(data: Path, work: Path) -> tuple[Path, Path]:
    d = data / "pickrell_lcl_counts_sex"
    counts = pd.read_csv(d / "counts.tsv.gz", sep="\t", index_col=0)
    s = pd.read_csv(d / "samples.tsv", sep="\t")
    lab = pd.DataFrame({"sample_id": s.sample_id, "label": s.gender, "group": s.sample_id})
    return _write(_table(_cpm(counts)), lab, work, "pickrell")


DATASETS = {"tcga6": tcga6, "rnasum": rnasum, "pickrell": pickrell}
COHORTS = ("ACC", "UVM", "KICH", "UCS", "DLBC", "CHOL")
MIN_SITE = 8  # samples a tissue source site needs to be a probe label


def single_cohort(data: Path, work: Path, cohort: str) -> tuple[Path, Path]:
    """One RNAsum cohort alone (36-80 tumours of one cancer: a small, homogeneous matrix, the
    regime where kNN is hardest to beat). Label = the TCGA tissue source site (barcode field
    2, the collecting centre) where a site has >= MIN_SITE samples, else unlabelled: a real,
    hard, within-cancer label (KICH: 4 sites, 65 samples); one class left = no probe."""
    counts, lab = rnasum_counts(data, cohorts=[cohort])
    site = lab["sample_id"].str.split("-").str[1]
    n = site.map(site.value_counts())
    lab["label"] = site.where(n >= MIN_SITE, "")
    return _write(_table(_cpm(counts)), lab[["sample_id", "label", "group"]], work,
                  f"single_{cohort}")


def single_table(rows: list[tuple[str, list[dict]]]) -> str:
    """One line per cohort: masked PCC / MSE of the model, kNN and the AE (mean ± s.d. over
    seeds), samples where the model beats each, and the held-out probes where labelled."""
    lines = ["| cohort (held-out per seed) | masked PCC model / kNN / AE | MSE model / kNN / AE | "
             "model better than kNN / AE (seeds) | probe held-out model / AE / PCA-50 |",
             "|---|---|---|---|---|"]
    for name, res in rows:
        rec = {m: [r["reconstruction"][m] for r in res] for m in ("model", "knn", "ae")}
        pcc = " / ".join(f"{np.mean([x['pcc'] for x in rec[m]]):.4f}"
                         + (f" ± {np.std([x['pcc'] for x in rec[m]]):.4f}" if m == "model" else "")
                         for m in rec)
        mse = " / ".join(f"{np.mean([x['mse'] for x in rec[m]]):.3f}" for m in rec)
        wins = " / ".join(
            f"{sum(r['reconstruction']['model']['pcc'] > r['reconstruction'][m]['pcc'] for r in res)}"
            f"/{len(res)}" for m in ("knn", "ae"))
        probe = "–"
        if all(r.get("probe") for r in res):
            probe = " / ".join(f"{np.mean([r['probe'][f]['accuracy'] for r in res]):.3f}"
                               for f in ("model", "ae_latent", "pca_raw"))
        held = ", ".join(str(r["n_held_out"]) for r in res)
        lines.append(f"| {name} ({held}) | {pcc} | {mse} | {wins} | {probe} |")
    return "\n".join(lines) + "\n"


def run_one(matrix: Path, labels: Path, out: Path, tcfg: TrainConfig,
            splits: str | None = None) -> dict:
    t = time.perf_counter()
    # A finished run resumes in seconds (stages skipped); a readout saved before the sample
    # embedding's definition existed gets it added.
    train(str(matrix), out, tcfg, labels=str(labels), splits=splits, progress=False)
    t_train = time.perf_counter() - t
    res_path = out / "bench_eval.json"
    if res_path.exists():
        res = json.loads(res_path.read_text())
    else:
        t = time.perf_counter()
        res = evaluate(out, matrix, labels=str(labels), out=out / "evaluate", progress=False)
        res["eval_s"] = time.perf_counter() - t
        res["train_s_this_call"] = t_train
        res_path.write_text(json.dumps(res, indent=2))
    summary = json.loads((out / "summary.json").read_text())
    res["readout_cv"] = (summary.get("readout") or {}).get("cv_sse")
    return res


def default_runs(matrix: Path, labels: Path, root: Path,
                 seeds: list[int]) -> tuple[list[Path], list[dict]]:
    """The defaults on one matrix, one run per seed under root/default_s<seed>."""
    outs = [root / f"default_s{s}" for s in seeds]
    return outs, [run_one(matrix, labels, o, _cfg(s)) for o, s in zip(outs, seeds, strict=True)]


def _cfg(seed: int, **kw) -> TrainConfig:
    return from_dict({"seed": seed, "num_threads": 1, **kw})


def _ms(v: list[float]) -> str:
    v = [x for x in v if x is not None and np.isfinite(x)]
    return f"{np.mean(v):.4f} ± {np.std(v):.4f}" if v else "–"


def summarise(name: str, outs: list[Path], results: list[dict], methods=METHODS) -> str:
    lines = [f"#### {name}: {len(results)} seeds, held-out test split "
             f"({', '.join(str(r['n_held_out']) for r in results)} samples)\n",
             "| method | masked PCC | per-sample PCC | MSE |", "|---|---|---|---|"]
    for m in methods:
        if m not in results[0]["reconstruction"]:
            continue
        rec = [r["reconstruction"][m] for r in results]
        lines.append(f"| {m} | {_ms([x['pcc'] for x in rec])} | "
                     f"{_ms([x['sample_pcc_mean'] for x in rec])} | {_ms([x['mse'] for x in rec])} |")
    lines.append("")
    # paired per-sample tests
    lines += ["| model vs | better samples (all seeds) | Wilcoxon p per seed | "
              "Wilcoxon p, all seeds pooled |", "|---|---|---|---|"]
    tabs = [pd.read_csv(o / "evaluate" / "sample_pcc.tsv", sep="\t") for o in outs]
    pooled = pd.concat(tabs)
    for m in ("knn", "ae", "trunk", "zero_shot"):
        if m not in pooled.columns:
            continue
        ok = pooled[["model", m]].dropna()
        d = ok["model"] - ok[m]
        per = [f"{r['paired'][m]['wilcoxon_p']:.2g}" for r in results]
        p = wilcoxon(ok["model"], ok[m]).pvalue if (d != 0).any() else 1.0
        lines.append(f"| {m} | {int((d > 0).sum())}/{len(d)} | {', '.join(per)} | {p:.2g} |")
    lines.append("")
    if results[0].get("probe"):
        lines += ["| probe features | held-out accuracy | repeated grouped CV accuracy |",
                  "|---|---|---|"]
        for f in PROBES:
            if f not in results[0]["probe"]:
                continue
            ho = [r["probe"][f]["accuracy"] for r in results]
            rc = [r["probe_repeated_cv"][f]["accuracy"] for r in results
                  if r.get("probe_repeated_cv")]
            lines.append(f"| {f} | {_ms(ho)} | {_ms(rc)} |")
        lines.append("")
    weights = [r.get("readout") or {} for r in results]
    lines.append("Readout per seed: " + "; ".join(
        f"{w.get('mode')} {w.get('mean_weights')}" for w in weights))
    steps = []
    for o in outs:
        m = pd.read_csv(o / "metrics.csv")
        chosen = [json.loads((o / st / "config.json").read_text()).get("best_step")
                  for st in ("ae", "model")]
        steps.append(f"ae {chosen[0]}/{int(m[m.stage == 'ae'].step.max())}, model "
                     f"{chosen[1]}/{int(m[m.stage == 'model'].step.max())}, "
                     f"{m.groupby('stage').elapsed_s.max().sum():.0f} s")
    lines.append("Steps chosen by validation loss / steps run (early stopping), and training "
                 "time, per seed: " + "; ".join(steps))
    emb = [((r.get("readout") or {}).get("embedding") or {}) for r in results]
    lines.append("Sample embedding blocks chosen per seed (grouped CV over train + val): "
                 + "; ".join(f"{'+'.join(e.get('blocks', []))} (CV {e.get('cv_accuracy')})"
                             for e in emb))
    for key, what in (("ae_mask_fraction", "training mask"),
                      ("ae_regularisation", "regularisation")):
        got = []
        for o in outs:
            c = o / "choices.json"
            ch = json.loads(c.read_text()).get(key) if c.exists() else None
            got.append(f"{ch['chosen']} ({ch['validation_masked_mse']})" if ch else "none")
        lines.append(f"Stage-1 {what} chosen per seed (validation masked-gene MSE): "
                     + "; ".join(got))
    cv = [(r.get("readout_cv") or {}) for r in results]
    if any(cv):
        lines.append("Readout 2-fold CV SSE on validation, global vs per-gene: " + "; ".join(
            f"{c.get('global', float('nan')):.0f} vs {c.get('per_gene', float('nan')):.0f}"
            for c in cv))
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--workdir", type=Path, required=True)
    p.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--runs", nargs="+", default=["default", "bulkformer", "switches",
                                                  "transfer"],
                   choices=["default", "bulkformer", "switches", "transfer", "single"])
    p.add_argument("--cohorts", nargs="+", default=list(COHORTS), choices=list(COHORTS),
                   help="cohorts of --runs single")
    p.add_argument("--bulkformer-steps", type=int, default=40,
                   help="stage-2 step ceiling of the bulkformer preset (CPU budget)")
    p.add_argument("--transfer-steps", type=int, nargs=2, default=[150, 150],
                   metavar=("AE", "MODEL"))
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(1)
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    report = [f"torch {torch.__version__}, 1 thread, seeds {args.seeds}\n"]

    def emit(text: str) -> None:
        report.append(text)
        print(text, flush=True)
        (work / "report.md").write_text("\n".join(report))

    if "default" in args.runs:
        for ds in args.datasets:
            outs, res = default_runs(*DATASETS[ds](args.data, work), work / ds, args.seeds)
            emit(summarise(f"{ds}, defaults", outs, res))
    if "single" in args.runs:
        rows = []
        for cohort in args.cohorts:
            outs, res = default_runs(*single_cohort(args.data, work, cohort),
                                     work / f"single_{cohort}", args.seeds)
            emit(summarise(f"{cohort} alone (RNAsum counts), defaults", outs, res))
            rows.append((cohort, res))
        emit(single_table(rows))
    if "bulkformer" in args.runs:
        ds = args.datasets[0]
        matrix, labels = DATASETS[ds](args.data, work)
        n = args.bulkformer_steps
        for preset, lr in (("cpu", 1e-3), ("bulkformer", 1e-4)):
            outs = [work / ds / f"{preset}_{n}steps_s{s}" for s in args.seeds]
            res = []
            for o, s in zip(outs, args.seeds, strict=True):
                splits = work / ds / f"default_s{s}" / "splits.tsv"  # the default's split
                cfg = _cfg(s, size=preset,
                           transformer={"steps": n, "batch_size": 8, "lr": lr})
                res.append(run_one(matrix, labels, o, cfg,
                                   splits=str(splits) if splits.exists() else None))
            emit(summarise(f"{ds}, size: {preset}, stage 2 at most {n} steps (lr {lr:g})",
                           outs, res))
    if "switches" in args.runs:
        ds = args.datasets[0]
        matrix, labels = DATASETS[ds](args.data, work)
        n = args.bulkformer_steps
        switches = {"zero_masked_ree": {"model": {"zero_masked_ree": True}},
                    "token_mlp": {"model": {"token_mlp": True}},
                    "pool_max": {"model": {"pool": "max"}},
                    "joint_context": {"joint_context": True},
                    "lr_1e-4": {"lr": 1e-4}}
        for name, change in switches.items():
            outs = [work / ds / f"switch_{name}_{n}steps_s{s}" for s in args.seeds]
            res = []
            for o, s in zip(outs, args.seeds, strict=True):
                splits = work / ds / f"default_s{s}" / "splits.tsv"
                kw = {k: v for k, v in change.items() if k != "lr"}
                cfg = _cfg(s, transformer={"steps": n, "batch_size": 8,
                                           "lr": change.get("lr", 1e-3)}, **kw)
                res.append(run_one(matrix, labels, o, cfg,
                                   splits=str(splits) if splits.exists() else None))
            emit(summarise(f"{ds}, defaults + {name}, stage 2 at most {n} steps", outs, res))
    if "transfer" in args.runs:
        pre_m, pre_l = rnasum(args.data, work, exclude=("KICH",), name="rnasum_no_kich")
        pre = work / "transfer" / "pretrained"
        run_one(pre_m, pre_l, pre, _cfg(0))
        km, kl = kich(args.data, work)
        a, b = args.transfer_steps
        eq = {"ae": {"steps": a, "batch_size": 32, "lr": 1e-3},
              "transformer": {"steps": b, "batch_size": 8, "lr": 1e-3},
              "early_stopping_patience": 0, "ae_mask_choices": [],  # one stage 1 each
              "ae_regularisation_choices": []}
        # Scratch on the pretrained model's genes (same genes scored as the fine-tuned run),
        # and scratch on KICH's own top-variance genes (what a user without --init gets).
        pre_genes = set((pre / "genes.txt").read_text().split())
        same = work / "kich_pretrained_genes.parquet"
        if not same.exists():
            t = pd.read_parquet(km)
            t[t["gene"].isin(pre_genes)].reset_index(drop=True).to_parquet(same, index=False)
        fts, scs, own, rf, rs, ro = [], [], [], [], [], []
        for s in args.seeds:
            ft = work / "transfer" / f"finetuned_s{s}"
            rf.append(run_one(km, kl, ft, _cfg(s, init=str(pre), **eq)))
            sc = work / "transfer" / f"scratch_samegenes_s{s}"
            rs.append(run_one(same, kl, sc, _cfg(s, **eq), splits=str(ft / "splits.tsv")))
            so = work / "transfer" / f"scratch_s{s}"
            ro.append(run_one(km, kl, so, _cfg(s, **eq), splits=str(ft / "splits.tsv")))
            fts.append(ft)
            scs.append(sc)
            own.append(so)
        emit(summarise(f"KICH, fine-tuned from RNAsum-without-KICH ({a} + {b} steps)", fts, rf,
                       METHODS + ["zero_shot"]))
        emit(summarise(f"KICH, from scratch on the pretrained model's 1,000 genes ({a} + {b} "
                       "steps, same splits)", scs, rs))
        emit(summarise(f"KICH, from scratch on KICH's own top-1,000 genes ({a} + {b} steps, "
                       "same splits; other genes scored, not comparable in PCC)", own, ro))
        wins = sum(f["reconstruction"]["model"]["pcc"] > s_["reconstruction"]["model"]["pcc"]
                   for f, s_ in zip(rf, rs, strict=True))
        trunk = sum(f["reconstruction"]["trunk"]["pcc"] > s_["reconstruction"]["trunk"]["pcc"]
                    for f, s_ in zip(rf, rs, strict=True))
        paired = []
        for f_, s_ in zip(fts, scs, strict=True):  # same samples, same genes, same masks
            a_ = pd.read_csv(f_ / "evaluate" / "sample_pcc.tsv", sep="\t").set_index("sample_id")
            b_ = pd.read_csv(s_ / "evaluate" / "sample_pcc.tsv", sep="\t").set_index("sample_id")
            paired.append(pd.DataFrame({"ft": a_["model"], "sc": b_.loc[a_.index, "model"]}))
        pp = pd.concat(paired).dropna()
        pw = wilcoxon(pp["ft"], pp["sc"]).pvalue
        emit(f"Fine-tuned beats scratch (same genes, same test samples and masks) in masked PCC "
             f"(model) on {wins}/{len(rf)} seeds, (trunk alone) on {trunk}/{len(rf)} seeds; "
             f"per sample {int((pp.ft > pp.sc).sum())}/{len(pp)}, Wilcoxon p {pw:.2g}.\n")


if __name__ == "__main__":
    main()
