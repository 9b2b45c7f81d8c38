"""Sex from expression: XIST against the chrY genes (RPS4Y1, DDX3Y, UTY, KDM5D, EIF1AY).

A logistic model on three features - log1p XIST, mean log1p of the Y genes, and their
difference (which cancels library size) - is trained on the samples that carry a female/male
label and predicts the others. No single Y gene decides: RPS4Y1 picks up X-homolog reads in
females (in the Pickrell LCL counts the tests use, RPS4Y1's median is 111 in females vs 953 in
males, while XIST separates them 2855 vs 3). Agreement with the labels is cross-validated (each
labelled sample is predicted by a model that did not see it); a label that the expression contradicts with high
probability is flagged as a conflict, never silently overwritten.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bulkfm.common.atomic import atomic_path, write_text_atomic
from bulkfm.common.figures import pyplot, save_png
from bulkfm.metadata.schema import FEMALE, MALE
from bulkfm.samples import ID_COLUMNS, id_column

log = logging.getLogger(__name__)

X_GENE = "XIST"
Y_GENES = ("RPS4Y1", "DDX3Y", "UTY", "KDM5D", "EIF1AY")
# Ensembl IDs of the same genes, for matrices whose columns are Ensembl IDs (GENCODE v48).
ENSEMBL = {"ENSG00000229807": "XIST", "ENSG00000129824": "RPS4Y1", "ENSG00000067048": "DDX3Y",
           "ENSG00000183878": "UTY", "ENSG00000012817": "KDM5D", "ENSG00000198692": "EIF1AY"}
CONFLICT_PROB = 0.9  # a label is flagged when the expression says the other sex this surely
MIN_PER_CLASS = 5


class SexImputationError(ValueError):
    pass


def _symbol(gene: str) -> str:
    g = gene.split("|")[0].split(".")[0]  # 'XIST|7503' (TCGA), 'ENSG…​.12'
    return ENSEMBL.get(g, g).upper()


def gene_columns(matrix) -> dict[str, int]:
    """Symbol -> column index for XIST and the Y genes found in the matrix."""
    names = list(getattr(matrix, "gene_names", None) or matrix.genes)
    want = {X_GENE, *Y_GENES}
    cols: dict[str, int] = {}
    for i, g in enumerate(names):
        s = _symbol(str(g))
        if s in want and s not in cols:
            cols[s] = i
    if X_GENE not in cols or not any(y in cols for y in Y_GENES):
        raise SexImputationError(
            f"matrix lacks XIST and/or every chrY gene ({', '.join(Y_GENES)}); found {sorted(cols)}. "
            "Genes must be symbols, 'SYMBOL|ID' or Ensembl gene IDs")
    return cols


def sex_features(matrix, batch_size: int = 512) -> tuple[list[str], np.ndarray, list[str]]:
    """(samples, features [n, 3], Y genes used); read in sample batches (memory O(batch x genes))."""
    from bulkfm.matrix.store import iter_row_batches

    cols = gene_columns(matrix)
    ys = [y for y in Y_GENES if y in cols]
    idx = [cols[X_GENE]] + [cols[y] for y in ys]
    feats = np.zeros((matrix.shape[0], 3), dtype=np.float64)
    for rows, values in iter_row_batches(matrix, batch_size):
        sub = values[:, idx].astype(np.float64)  # [batch, 1 + n_y] log1p scale
        x, y = sub[:, 0], sub[:, 1:].mean(axis=1)
        feats[rows] = np.column_stack([x, y, y - x])
    return list(matrix.samples), feats, ys


@dataclass
class SexResult:
    table: pd.DataFrame  # sample_id, label, predicted, p_male, method, conflict
    report: dict


def impute_sex(samples: list[str], feats: np.ndarray, labels: dict[str, str | None], seed: int = 0) -> SexResult:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    lab = np.array([{"female": 0, "male": 1}.get((labels.get(s) or "").lower(), -1) for s in samples])
    known = lab >= 0
    n_f, n_m = int((lab == 0).sum()), int((lab == 1).sum())
    report: dict = {"samples": len(samples), "labelled_female": n_f, "labelled_male": n_m,
                    "unlabelled": int((~known).sum())}
    p_cv = np.full(len(samples), np.nan)
    if min(n_f, n_m) >= MIN_PER_CLASS:
        model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000))
        folds = min(5, n_f, n_m)
        cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        p_cv[known] = cross_val_predict(model, feats[known], lab[known], cv=cv, method="predict_proba")[:, 1]
        model.fit(feats[known], lab[known])
        p = model.predict_proba(feats)[:, 1]
        method = "logistic (trained on labelled samples)"
        p[known] = p_cv[known]  # labelled samples are judged by a model that did not see them
    else:
        # too few labels to train: XIST vs chrY, the sign of (Y - XIST) centred on its midpoint
        d = feats[:, 2]
        mid = (np.percentile(d, 10) + np.percentile(d, 90)) / 2
        scale = max(1e-6, (np.percentile(d, 90) - np.percentile(d, 10)) / 8)
        p = 1 / (1 + np.exp(-(d - mid) / scale))
        p_cv[known] = p[known]
        method = "rule (Y minus XIST; too few labels to train)"
    pred = np.where(p >= 0.5, "male", "female")
    conflict = known & (((lab == 1) & (p < 1 - CONFLICT_PROB)) | ((lab == 0) & (p > CONFLICT_PROB)))
    table = pd.DataFrame({
        "sample_id": samples,
        "label": [("female", "male")[v] if v >= 0 else "" for v in lab],
        "predicted": pred,
        "p_male": np.round(p, 4),
        "method": np.where(known, "label", "imputed"),
        "conflict": conflict,
    })
    if known.any():
        agree = (pred[known] == np.array([("female", "male")[v] for v in lab[known]]))
        report["agreement"] = round(float(agree.mean()), 4)
        report["disagreeing"] = int((~agree).sum())
    report.update({"model": method, "conflicts": int(conflict.sum()), "imputed": int((~known).sum()),
                   "conflict_samples": [s for s, c in zip(samples, conflict) if c][:100]})
    return SexResult(table, report)


def read_labels(path: str | os.PathLike[str]) -> dict[str, str | None]:
    """Sex labels from harmonized.parquet (field 'sex', methods other than 'imputed') or a TSV."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"labels not found: {path}")
    if path.suffix == ".parquet":
        df = pd.read_parquet(path)
        if {"field", "value"} <= set(df.columns):
            df = df[(df["field"] == "sex") & (df["method"] != "imputed")]
            return {str(s): (v if v in ("female", "male") else None) for s, v in zip(df["sample_id"], df["value"])}
    else:
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    col = next((c for c in ("sex", "gender", "value") if c in df.columns), None)
    sid = id_column(df, where=path) if set(ID_COLUMNS) & set(df.columns) else None
    if col is None or sid is None:
        raise SexImputationError(f"{path}: needs sample_id and sex columns (or a harmonized.parquet)")
    out = {}
    for s, v in zip(df[sid], df[col]):
        v = str(v).strip().lower()
        out[str(s)] = {"f": "female", "m": "male"}.get(v, v) if v in ("female", "male", "f", "m") else None
    return out


def plot(samples: list[str], feats: np.ndarray, result: SexResult, path: str | os.PathLike[str]) -> None:
    plt = pyplot()

    t = result.table
    fig, ax = plt.subplots(figsize=(5, 4), dpi=120)
    for lab, colour in (("female", "tab:red"), ("male", "tab:blue"), ("", "tab:grey")):
        m = (t["label"] == lab).to_numpy()
        ax.scatter(feats[m, 0], feats[m, 1], s=14, c=colour, label=lab or "unlabelled", alpha=0.8)
    c = t["conflict"].to_numpy()
    ax.scatter(feats[c, 0], feats[c, 1], s=60, facecolors="none", edgecolors="k", label="conflict")
    ax.set_xlabel("XIST (log1p)")
    ax.set_ylabel("mean chrY genes (log1p)")
    ax.set_title("Sex from expression")
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_png(fig, path)


def reference_has_sex_genes(gene_table: str | os.PathLike[str] | None) -> bool:
    """Whether a gene table names XIST and a chrY gene (False for the chr19 demo reference), so
    the workflow plans the sex plot only where one can be drawn. No table: assume it does."""
    if not gene_table or not Path(gene_table).is_file():
        return True
    names = set(pd.read_csv(gene_table, sep="\t", usecols=lambda c: c in ("gene_name", "gene_symbol"),
                            dtype=str).stack())
    return X_GENE in names and any(y in names for y in Y_GENES)


def impute_sex_cli(matrix_path: str, labels_path: str, out: str, report_path: str | None, plot_path: str | None,
                   allow_missing_genes: bool = False, merged: str | None = None) -> SexResult | None:
    from bulkfm.matrix.store import open_matrix

    if not Path(matrix_path).exists():
        raise FileNotFoundError(f"matrix not found: {matrix_path}")
    if merged and not str(labels_path).endswith(".parquet"):
        raise SexImputationError("--merged needs --labels to be a harmonized.parquet (copied with sex filled in)")
    matrix = open_matrix(matrix_path)
    try:
        samples, feats, ys = sex_features(matrix)
    except SexImputationError as exc:
        if not allow_missing_genes:
            raise
        log.warning("sex imputation skipped: %s", exc)
        with atomic_path(out) as tmp:
            pd.DataFrame(columns=["sample_id", "label", "predicted", "p_male", "method", "conflict"]).to_csv(
                tmp, sep="\t", index=False)
        if report_path:
            write_text_atomic(report_path, json.dumps({"skipped": str(exc), "matrix": str(matrix_path)}, indent=2) + "\n")
        if plot_path:  # no placeholder image: the report JSON holds the reason
            Path(plot_path).unlink(missing_ok=True)
        if merged:
            merge_imputed(labels_path, pd.DataFrame(columns=["sample_id", "predicted", "p_male", "method"]), merged)
        return None
    labels = read_labels(labels_path)
    missing = sum(1 for s in samples if s not in labels)
    res = impute_sex(samples, feats, labels)
    res.report.update({"y_genes": ys, "samples_without_metadata": missing, "matrix": str(matrix_path)})
    if merged:
        res.report["filled_in_harmonized"] = merge_imputed(labels_path, res.table, merged)
    with atomic_path(out) as tmp:
        res.table.to_csv(tmp, sep="\t", index=False)
    if report_path:
        write_text_atomic(report_path, json.dumps(res.report, indent=2) + "\n")
    if plot_path:
        plot(samples, feats, res, plot_path)
    log.info("sex: agreement %s on %d labelled, %d imputed, %d conflicts", res.report.get("agreement"),
             res.report["labelled_female"] + res.report["labelled_male"], res.report["imputed"], res.report["conflicts"])
    return res


def merge_imputed(harmonized: str | os.PathLike[str], table: pd.DataFrame, out: str | os.PathLike[str],
                  batch_rows: int = 1_000_000) -> int:
    """harmonized.parquet with sex filled from expression where it is empty (method 'imputed',
    confidence = the model's probability of the predicted sex); labels are never overwritten
    (a conflict stays flagged in the sex table). Streams row batches: memory O(batch).
    Returns the number of samples filled."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    imputed = table[table["method"] == "imputed"]
    pred = {str(s): (v, float(max(p, 1 - p))) for s, v, p in zip(imputed["sample_id"], imputed["predicted"],
                                                                   imputed["p_male"])}
    src = pq.ParquetFile(harmonized)
    filled = 0
    with atomic_path(out) as tmp:
        writer = pq.ParquetWriter(tmp, src.schema_arrow)
        for batch in src.iter_batches(batch_size=batch_rows):
            df = batch.to_pandas()
            rows = (df["field"] == "sex") & df["value"].isna() & df["sample_id"].isin(pred.keys())
            if rows.any():
                hit = [pred[s] for s in df.loc[rows, "sample_id"]]
                df.loc[rows, "value"] = [v for v, _ in hit]
                df.loc[rows, "ontology_id"] = [{"female": FEMALE, "male": MALE}[v] for v, _ in hit]
                df.loc[rows, "source"] = "expression (XIST, chrY genes)"
                df.loc[rows, "method"] = "imputed"
                df.loc[rows, "confidence"] = [round(c, 4) for _, c in hit]
                filled += int(rows.sum())
            writer.write_table(pa.Table.from_pandas(df, schema=src.schema_arrow, preserve_index=False))
        writer.close()
    return filled
