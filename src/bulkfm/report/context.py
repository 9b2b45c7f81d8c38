"""'What this run shows, and what it cannot': facts read from a workflow's outputs, so the report
itself says when a stage ran on too little to mean anything (the demo's 4 chr19 samples) or on
other data (the bundled TCGA matrix the demo's model part uses), instead of leaving it to a log.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

# Below this many samples a matrix shows the processing, not biology (no split, graph or model
# means anything; the graph needs >= 3 train samples just to run).
MIN_MODEL_SAMPLES = 50


def _json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _same(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def run_context(outdir: str | os.PathLike[str], metrics: dict | None) -> list[str]:
    """Markdown bullet lines about ``outdir``'s stages (only those whose outputs exist)."""
    out = Path(outdir)
    lines: list[str] = []
    own = out / "matrix"
    n_own = None
    if (own / "samples.parquet").is_file() and (own / "genes.parquet").is_file():
        n_own = len(pd.read_parquet(own / "samples.parquet"))
        n_genes = len(pd.read_parquet(own / "genes.parquet"))
        qc = out / "qc" / "qc.tsv"
        reads = ""
        if qc.is_file():
            q = pd.read_csv(qc, sep="\t")
            if "reads_processed" in q and len(q):
                reads = f", {int(q['reads_processed'].median()):,} reads each (median)"
        verdict = (" It shows the processing (FASTQ -> Salmon -> gene matrix -> metadata), not "
                   f"biology: fewer than {MIN_MODEL_SAMPLES} samples are too few to train or "
                   "evaluate a model." if n_own < MIN_MODEL_SAMPLES else "")
        lines.append(f"- **Quantified here:** {n_own} samples x {n_genes:,} genes{reads}.{verdict}")
    if metrics:
        used = metrics.get("matrix", "")
        where = "this run's own matrix" if used and _same(used, own) else f"`{used}`"
        lines.append(f"- **Model and evaluation data:** {where}, {metrics['n_genes']:,} genes; "
                     f"held out {metrics['n_held_out']} samples ({metrics['held_out']}).")
        if used and not _same(used, own):
            lines.append("  The model did not see the quantified samples: the numbers and figures "
                         "below are results on that matrix (config `model_data.matrix`).")
    graph = _json(out / "graph" / "edges.summary.json")
    if graph:
        iso = graph.get("n_isolated_genes")
        lines.append(f"- **Co-expression graph:** {graph.get('n_edges', '?'):,} edges from "
                     f"{graph.get('n_train_samples', '?')} train samples"
                     + (f", {iso} genes isolated." if iso is not None else "."))
    harm = out / "metadata" / "harmonized.parquet"
    if harm.is_file():
        h = pd.read_parquet(harm, columns=["sample_id", "field", "ontology_id", "value"])
        filled = h[h["value"].notna() & (h["value"].astype(str) != "")]
        by_field = filled.groupby("field")["sample_id"].nunique()
        n = h["sample_id"].nunique()
        shown = ", ".join(f"{f} {c}/{n}" for f, c in by_field.sort_values(ascending=False).items())
        empty = sorted(set(h["field"]) - set(by_field.index))
        review = out / "metadata" / "review.tsv"
        n_review = max(0, sum(1 for _ in review.open()) - 1) if review.is_file() else 0
        lines.append(f"- **Metadata:** fields with a value (samples): {shown or 'none'}; "
                     f"{n_review} field values sent to review (metadata/review.tsv)."
                     + (f" No sample has {', '.join(empty)}: their bias plots show only "
                        "'(missing)'." if empty else ""))
    sex = _json(out / "metadata" / "sex_report.json")
    if sex:
        if "skipped" in sex:
            lines.append(f"- **Sex from expression:** not run ({sex['skipped']}); no plot is made.")
        else:
            lines.append(f"- **Sex from expression:** {sex.get('imputed', 0)} imputed, "
                         f"{sex.get('conflicts', 0)} conflicts with labels ({sex.get('model')}).")
    return lines
