"""Bias report: what the harmonized metadata over- and under-represents.

Counts per value of tissue, disease, sex, sample type, perturbation type and study (a PNG bar
chart each, top values), and the share of samples each field is missing before harmonization
(no raw key for it) and after (no harmonized value).
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from pathlib import Path

import pandas as pd

from bulkfm.common.atomic import atomic_path
from bulkfm.common.figures import pyplot, save_png
from bulkfm.metadata.schema import FIELDS

log = logging.getLogger(__name__)
BIAS_FIELDS = ("tissue", "disease", "sex", "sample_type", "perturbation_type", "cell_type", "cell_line")
TOP = 20


def _bar(counts: pd.Series, title: str, path: Path) -> None:
    plt = pyplot()

    top = counts.head(TOP)[::-1]
    fig, ax = plt.subplots(figsize=(7, 0.3 * max(4, len(top)) + 1), dpi=110)
    ax.barh([str(v)[:45] for v in top.index], top.to_numpy(), color="tab:blue")
    ax.set_xlabel("samples")
    ax.set_title(title)
    fig.tight_layout()
    save_png(fig, path)


def _missing_before(input_path: str | None, samples: list[str]) -> tuple[dict[str, float], dict[str, str]]:
    """Share of samples with no raw key for each field; and sample -> study (if known)."""
    if not input_path:
        return {}, {}
    from bulkfm.metadata.io import read_records
    from bulkfm.metadata.keys import match_key
    from bulkfm.metadata.rules import is_null

    present: Counter = Counter()
    study: dict[str, str] = {}
    n = 0
    for rec in read_records(input_path):
        n += 1
        fields = {match_key(k).field for k, v in rec.attributes.items() if v and not is_null(str(v))}
        fields |= {f for f in ("library_selection", "library_layout", "library_strategy", "instrument") if rec.sra.get(f)}
        for f in fields:
            if f:
                present[f] += 1
        st = rec.sra.get("study") or rec.attributes.get("study") or rec.attributes.get("bioproject")
        if st:
            study[rec.sample_id] = st
    return {f: round(1 - present[f] / n, 4) if n else 1.0 for f in FIELDS}, study


def _studies(input_path: str | None) -> dict[str, str]:
    if not input_path or not str(input_path).endswith(".parquet"):
        return {}
    import pyarrow.parquet as pq

    cols = set(pq.ParquetFile(input_path).schema_arrow.names)
    sid = "sample_id" if "sample_id" in cols else ("run" if "run" in cols else None)
    st = next((c for c in ("study", "bioproject", "study_accession") if c in cols), None)
    if not sid or not st:
        return {}
    df = pd.read_parquet(input_path, columns=[sid, st])
    return dict(zip(df[sid].astype(str), df[st].astype(str)))


def bias_report(harmonized: str | os.PathLike[str], outdir: str | os.PathLike[str], summary: str | os.PathLike[str],
                input_path: str | None = None) -> pd.DataFrame:
    df = pd.read_parquet(harmonized, columns=["sample_id", "field", "value", "ontology_id"])
    samples = df["sample_id"].unique().tolist()
    n = len(samples)
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    rows = []
    for fld in BIAS_FIELDS:
        sub = df[df["field"] == fld]
        vals = sub["value"].fillna("(missing)")
        counts = vals.value_counts()
        ids = dict(zip(sub["value"], sub["ontology_id"]))
        for v, c in counts.items():
            rows.append({"section": "counts", "field": fld, "value": v, "ontology_id": ids.get(v) or "",
                         "n": int(c), "share": round(c / n, 4) if n else 0.0})
        _bar(counts, f"{fld} ({n} samples)", outdir / f"{fld}.png")
    before, study = _missing_before(input_path, samples)
    study = study or _studies(input_path)
    if study:
        sc = pd.Series([study.get(s, "(unknown)") for s in samples]).value_counts()
        for v, c in sc.items():
            rows.append({"section": "counts", "field": "study", "value": v, "ontology_id": "", "n": int(c),
                         "share": round(c / n, 4)})
        _bar(sc, f"study ({n} samples)", outdir / "study.png")
    after = {f: round(float(df[(df["field"] == f)]["value"].isna().mean()), 4) for f in FIELDS}
    for f in FIELDS:
        rows.append({"section": "missing", "field": f, "value": "before" if before else "before (no input given)",
                     "ontology_id": "", "n": "", "share": before.get(f, "")})
        rows.append({"section": "missing", "field": f, "value": "after", "ontology_id": "", "n": "", "share": after[f]})
    table = pd.DataFrame(rows, columns=["section", "field", "value", "ontology_id", "n", "share"])
    with atomic_path(summary) as tmp:
        table.to_csv(tmp, sep="\t", index=False)
    _missing_plot(before, after, outdir / "missing.png")
    log.info("bias report: %d samples, %d PNGs in %s", n, len(list(outdir.glob("*.png"))), outdir)
    return table


def _missing_plot(before: dict[str, float], after: dict[str, float], path: Path) -> None:
    plt = pyplot()
    import numpy as np

    y = np.arange(len(FIELDS))
    fig, ax = plt.subplots(figsize=(7, 6), dpi=110)
    if before:
        ax.barh(y + 0.2, [before.get(f, 1.0) for f in FIELDS], height=0.4, label="before (no raw key)", color="tab:grey")
    ax.barh(y - 0.2, [after[f] for f in FIELDS], height=0.4, label="after harmonization", color="tab:green")
    ax.set_yticks(y, FIELDS)
    ax.set_xlabel("share of samples missing")
    ax.set_xlim(0, 1)
    ax.legend()
    fig.tight_layout()
    save_png(fig, path)
