"""Probe ablation of sample-embedding variants on the finished default runs of
benchmarks/train_datasets.py:  python benchmarks/probe_embedding_variants.py /tmp/bench13

Variants: the readout PCA (fitted on the training samples) alone, with the AE latent, with
the pooled hidden states (the default embedding), and all three. Held-out = fit on train,
score on test; rcv = repeated grouped 5-fold CV over train + test (3 repeats)."""
import sys, numpy as np, pandas as pd, torch
torch.set_num_threads(1)
from pathlib import Path
from bulkfm.model.checkpoint import load
from bulkfm.train.embed import model_view, readout_of, iter_embeddings
from bulkfm.matrix.store import open_matrix
from bulkfm.evaluate.run import read_labels
from bulkfm.evaluate.probes import probe_split, probe_repeated_cv
W = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/tmp/bench13")
mats = {"tcga6": str(Path(__file__).resolve().parents[1] / "../shared/data") + "/tcga_rnaseqv2_6cohorts/expression_rsem_normalized.genes_x_samples.parquet",
        "rnasum": W / "rnasum.parquet", "pickrell": W / "pickrell.parquet"}
rows_out = []
for ds, mp in mats.items():
    for s in (0, 1, 2):
        d = W / ds / f"default_s{s}"
        model = load(d); ro = readout_of(d)
        data = model_view(model, open_matrix(mp))
        lab = read_labels(W / f"{ds}_labels.tsv", list(data.samples))
        split = pd.read_csv(d / "splits.tsv", sep="\t").set_index("sample_id")["split"]
        lab = lab[lab.sample_id.map(split).isin(["train", "test"])].reset_index(drop=True)
        pos = {x: i for i, x in enumerate(data.samples)}
        rows = np.array([pos[x] for x in lab.sample_id])
        P, Z, H = [], [], []
        for idx, emb, z, _, pooled in iter_embeddings(model, data, rows, 16, torch.device("cpu"), False, ro):
            P.append(emb[:, :emb.shape[1] - pooled.shape[1]]); Z.append(z); H.append(pooled)
        P, Z, H = map(np.concatenate, (P, Z, H))
        feats = {"pca|pooled": np.hstack([P, H]), "pca|ae|pooled": np.hstack([P, Z, H]), "pca|ae": np.hstack([P, Z]), "pca": P}
        y = lab.label.to_numpy(); g = lab.group.to_numpy()
        tr = lab.sample_id.map(split).eq("train").to_numpy(); te = ~tr
        rep = probe_repeated_cv(feats, y, g, repeats=3, seed=0)
        for k, X in feats.items():
            r = probe_split(X, y, tr, te, 0, None, groups=g)
            rows_out.append({"ds": ds, "seed": s, "feat": k, "held": r["accuracy"], "rcv": rep[k]["accuracy"]})
        print(pd.DataFrame(rows_out).tail(4), flush=True)
df = pd.DataFrame(rows_out)
print(df.groupby(["ds", "feat"])[["held", "rcv"]].agg(["mean", "std"]).round(4).to_string())
