"""A small real cut of TCGA (CHOL, STAD, UVM: tumours and normals) and Pickrell (sex), as
matrix stores, plus one generator trained on each (module-scoped: trained once)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bulkfm.matrix.store import MatrixWriter, open_matrix

FAST = {"steps": 300, "max_genes": 300, "checkpoint_every": 200, "batch_size": 48,
        "model": {"encoder_hidden": [128, 64], "decoder_hidden": 64,
                  "latent": {"bio": 8, "pert": 2, "tech": 4}}}


def _store(path: Path, genes: list[str], samples: list[str], x: np.ndarray) -> Path:
    w = MatrixWriter(path, pd.DataFrame({"gene_id": genes, "gene_name": genes}),
                     pd.DataFrame({"sample_id": samples}), layers=("log1p_tpm",))
    w.write(0, log1p_tpm=x.astype(np.float32))
    return w.close()


@pytest.fixture(scope="session")
def tcga_cut(shared_data: Path, tmp_path_factory) -> tuple[Path, Path]:
    d = shared_data / "tcga_rnaseqv2_6cohorts"
    meta = pd.read_csv(d / "samples.tsv", sep="\t")
    meta = meta[meta.cohort.isin(["CHOL", "STAD", "UVM"])]
    m = open_matrix(d / "expression_rsem_normalized.genes_x_samples.parquet")
    pos = {s: i for i, s in enumerate(m.samples)}
    x = m.rows([pos[s] for s in meta.sample_id])
    keep = np.argsort(-x.std(0))[:1500]  # a cut; the trainer picks its genes from train rows
    root = tmp_path_factory.mktemp("tcga")
    store = _store(root / "matrix", [m.genes[i] for i in sorted(keep)], meta.sample_id.tolist(),
                   x[:, sorted(keep)])
    table = pd.DataFrame({"sample_id": meta.sample_id, "disease": meta.cohort,
                          "sample_type": meta.sample_type.map(
                              {"Primary Solid Tumor": "tumour", "Solid Tissue Normal": "normal"}),
                          "participant": meta.participant})
    table.to_csv(root / "meta.tsv", sep="\t", index=False)
    return store, root / "meta.tsv"


@pytest.fixture(scope="session")
def pickrell_cut(shared_data: Path, tmp_path_factory) -> tuple[Path, Path]:
    d = shared_data / "pickrell_lcl_counts_sex"
    c = pd.read_csv(d / "counts.tsv.gz", sep="\t", index_col=0)
    s = pd.read_csv(d / "samples.tsv", sep="\t")
    x = c.to_numpy(np.float64).T
    x = np.log1p(x / x.sum(1, keepdims=True) * 1e6)
    keep = np.sort(np.argsort(-x.std(0))[:1500])
    root = tmp_path_factory.mktemp("pickrell")
    store = _store(root / "matrix", c.index[keep].tolist(), c.columns.tolist(), x[:, keep])
    pd.DataFrame({"sample_id": s.sample_id, "sex": s.gender}).to_csv(root / "meta.tsv",
                                                                     sep="\t", index=False)
    return store, root / "meta.tsv"


@pytest.fixture(scope="session")
def fast() -> dict:
    return FAST


@pytest.fixture(scope="session")
def tcga_model(tcga_cut, tmp_path_factory) -> Path:
    from bulkfm.generate.train import GenTrainConfig, train_generator

    out = tmp_path_factory.mktemp("gen") / "run"
    train_generator(str(tcga_cut[0]), str(tcga_cut[1]), out, GenTrainConfig.from_dict(FAST),
                    progress=False)
    return out


@pytest.fixture(scope="session")
def pickrell_model(pickrell_cut, tmp_path_factory) -> Path:
    from bulkfm.generate.train import GenTrainConfig, train_generator

    out = tmp_path_factory.mktemp("genp") / "run"
    cfg = {**FAST, "holdout_fraction": 0.25}
    train_generator(str(pickrell_cut[0]), str(pickrell_cut[1]), out,
                    GenTrainConfig.from_dict(cfg), progress=False)
    return out


@pytest.fixture(scope="session")
def two_processings_cut(shared_data: Path, tmp_path_factory) -> tuple[Path, Path]:
    """CHOL, DLBC, UVM tumours of TCGA under two processings on shared Ensembl genes: log1p
    RSEM and RNAsum raw counts -> log1p CPM; study = processing (a real technical factor)."""
    d = shared_data / "tcga_rnaseqv2_6cohorts"
    meta = pd.read_csv(d / "samples.tsv", sep="\t")
    meta = meta[meta.cohort.isin(["CHOL", "DLBC", "UVM"])
                & (meta.sample_type == "Primary Solid Tumor")]
    m = open_matrix(d / "expression_rsem_normalized.genes_x_samples.parquet")
    ens = pd.read_csv(d / "genes.tsv.gz", sep="\t", dtype=str)
    ens = dict(zip(ens["gene"], ens["ensembl_gene_id_orgHsEgDb_3.16"], strict=True))
    frames = {c: pd.read_csv(shared_data / "tcga_counts_rnasum" / f"TCGA_{c}_Counts.exp.gz",
                             sep="\t", index_col=0) for c in ("CHOL", "DLBC", "UVM")}
    counts = pd.concat(frames.values(), axis=1)
    pos = {s: i for i, s in enumerate(m.samples)}
    xa = m.rows([pos[s] for s in meta.sample_id])
    cols: dict[str, int] = {}
    for j, g in enumerate(m.genes):
        e = ens.get(g)
        if isinstance(e, str) and e in counts.index and e not in cols:
            cols[e] = j
    keep = np.argsort(-xa[:, list(cols.values())].std(0))[:600]
    genes = [list(cols)[i] for i in sorted(keep)]
    xb = counts.to_numpy(np.float64).T
    xb = np.log1p(xb / xb.sum(1, keepdims=True) * 1e6)[:, [counts.index.get_loc(e)
                                                          for e in genes]]
    x = np.vstack([xa[:, [cols[e] for e in genes]], xb])
    ids_b = [f"{s}|rnasum" for s in counts.columns]
    root = tmp_path_factory.mktemp("two")
    store = _store(root / "matrix", genes, meta.sample_id.tolist() + ids_b, x)
    cohort_b = [c for c, f in frames.items() for _ in f.columns]
    pd.DataFrame({"sample_id": meta.sample_id.tolist() + ids_b,
                  "disease": meta.cohort.tolist() + cohort_b,
                  "study": ["rsem"] * len(meta) + ["rnasum_counts"] * len(ids_b),
                  "participant": meta.participant.tolist()
                  + ["-".join(s.split("-")[:3]) for s in counts.columns]}
                 ).to_csv(root / "meta.tsv", sep="\t", index=False)
    return store, root / "meta.tsv"
