"""Scoring the harmonizer on labelled sets (MetaSRA and txt2onto JSONL).

How answers are scored (ontology fields):
- right: the answer is a labelled term or lies below one (``is_a``/``part_of`` ancestors from the
  snapshot) - 'at or below the labelled term';
- partly right: the answer is an ancestor of a labelled term (more general than the label);
  reported separately and NOT counted as right;
- wrong: anything else; missed: no answer.
precision = right / answered, recall = right / labelled (per field, samples with a label only).

Label conventions:
- MetaSRA: explicitly mapped terms define what must be found (recall); explicitly mapped plus
  consequent (inferred) terms are all acceptable answers. ``EFO_UBERON:…``-style IDs are the
  ontology's own IDs seen through EFO and are read as such. Organism-level UBERON terms
  ('female organism', 'adult organism') are sex/stage labels, not tissues. BTO and EFO-native
  terms have no field in our schema (BTO is not shipped offline) and are not scored; counts are
  reported. Disease labels are DOID; the snapshot's MONDO has no DOID cross-references, so a DOID
  label is mapped to MONDO by exact label/synonym match of the label text that MetaSRA stores;
  unmappable DOID labels are reported and not scored. Sex: PATO female/male (or the UBERON
  female/male organism). Age: EFO 'age' real-value property with its UO unit (no unit: years),
  right within 2 % (or 0.1 year). Sample type: MetaSRA classes mapped to ours (tissue -> primary
  tissue or xenograft, primary_cells -> primary cells, cell_line -> cell line,
  in_vitro_differentiated_cells -> in-vitro differentiated or organoid (MetaSRA has neither xenograft
  nor organoid), induced_pluripotent_stem_cells -> cell line, stem_cells -> cell line or
  primary cells: ESC lines are cell lines, sorted HSCs primary cells); 'TODO'/missing not scored.
- txt2onto: the one manual label (UBERON -> tissue, CL -> cell type) of each GEO sample's text.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter, defaultdict
from pathlib import Path

from bulkfm.metadata.matcher import organism_level
from bulkfm.metadata.ontology import TermIndex, prefix_of
from bulkfm.metadata.pipeline import Harmonizer, RawRecord
from bulkfm.metadata.schema import FEMALE, MALE

SCORED = ("tissue", "cell_type", "cell_line", "sex", "age_years", "sample_type", "disease")
_LIFE_STAGE = "UBERON:0000105"
_SEX_TERMS = {"PATO:0000383": FEMALE, "PATO:0000384": MALE, "UBERON:0003100": FEMALE, "UBERON:0003101": MALE}
_AGE_UNIT = {"UO:0000036": 1.0, "UO:0000035": 1 / 12, "UO:0000034": 1 / 52.1775, "UO:0000033": 1 / 365.25,
             "missing": 1.0}
# MetaSRA has no xenograft/organoid classes: a xenograft is tissue, an organoid is grown in vitro.
_SAMPLE_TYPE = {"tissue": {"primary tissue", "xenograft"}, "primary_cells": {"primary cells"}, "cell_line": {"cell line"},
                "in_vitro_differentiated_cells": {"in-vitro differentiated", "organoid"},
                "induced_pluripotent_stem_cells": {"cell line"}, "stem_cells": {"cell line", "primary cells"}}


def _read_jsonl(path: str | Path, limit: int | None = None) -> list[dict]:
    opener = gzip.open if str(path).endswith(".gz") else open
    out = []
    with opener(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                out.append(json.loads(line))
                if limit and len(out) >= limit:
                    break
    return out


def _strip(tid: str) -> str:
    tid = tid[4:] if tid.startswith("EFO_") else tid
    return "CVCL_" + tid[5:] if tid.startswith("CVCL:") else tid


def metasra_gold(rec: dict, index: TermIndex, notes: Counter) -> dict:
    explicit = {_strip(k): v for k, v in (rec.get("explicitly_mapped_terms") or {}).items()}
    consequent = {_strip(k): v for k, v in (rec.get("consequent_terms") or {}).items()}
    gold: dict = {}
    for fld, prefix in (("tissue", "UBERON"), ("cell_type", "CL"), ("cell_line", "CVCL")):
        must = {t for t in explicit if prefix_of(t) == prefix}
        ok = must | {t for t in consequent if prefix_of(t) == prefix}
        if fld == "tissue":
            must = {t for t in must if not organism_level(index, t) and not index.is_a(t, _LIFE_STAGE)}
            ok = {t for t in ok if not organism_level(index, t) and not index.is_a(t, _LIFE_STAGE)}
        must = {index.resolve(t) or t for t in must}
        ok = {index.resolve(t) or t for t in ok}
        if must:
            gold[fld] = (must, ok)
    sexes = {_SEX_TERMS[t] for t in explicit if t in _SEX_TERMS}
    if len(sexes) == 1:
        gold["sex"] = (sexes, sexes)
    # disease: DOID label -> MONDO by exact label/synonym
    must, ok = set(), set()
    for terms, target in ((explicit, must), (consequent, ok)):
        for t, label in terms.items():
            if prefix_of(t) != "DOID":
                continue
            hits = [h for h, _ in index.find(label, ("MONDO",))]
            if hits:
                target.add(index.resolve(hits[0]) or hits[0])
            else:
                notes["disease: DOID label without MONDO match (not scored)"] += 1
    if must:
        gold["disease"] = (must, must | ok)
    for t in list(explicit) + list(consequent):
        p = prefix_of(t)
        if p in ("BTO", "Orphanet", "CHEBI", "EFO"):
            notes[f"{p} labels (not scored)"] += 1
    for prop in rec.get("real_value_properties") or []:
        if prop[0] == "EFO:0000246" and prop[2] in _AGE_UNIT:
            gold["age_years"] = float(prop[1]) * _AGE_UNIT[prop[2]]
    st = rec.get("sample_type")
    if st in _SAMPLE_TYPE:
        gold["sample_type"] = _SAMPLE_TYPE[st]
    return gold


def score_term(index: TermIndex, pred: str | None, must: set[str], ok: set[str]) -> str:
    if not pred:
        return "missed"
    if any(pred == g or index.is_a(pred, g) for g in ok):
        return "right"
    if any(index.is_a(g, pred) for g in must):
        return "partly"
    return "wrong"


def evaluate_files(paths: list[str], harm: Harmonizer, index: TermIndex, limit: int | None = None) -> dict:
    results: dict = {"datasets": {}, "notes": {}}
    total = Counter()
    for path in paths:
        rows = _read_jsonl(path, limit)
        if not rows:
            continue
        notes: Counter = Counter()
        if "text_processed" in rows[0]:
            name = "txt2onto"
            recs = [RawRecord(sample_id=r["gsm"], text=r["text_processed"]) for r in rows]
            golds = []
            for r in rows:
                lab = r["labels_unpropagated"][0]
                fld = "tissue" if lab.startswith("UBERON") else "cell_type"
                golds.append({fld: ({lab}, {lab})})
        else:
            name = "metasra"
            recs = [RawRecord(sample_id=r.get("sample_accession") or str(i), attributes=r.get("attributes") or {})
                    for i, r in enumerate(rows)]
            golds = [metasra_gold(r, index, notes) for r in rows]
        counts: dict[str, Counter] = defaultdict(Counter)
        confusion: dict[str, Counter] = defaultdict(Counter)
        for (rec, fields), gold in zip(harm.harmonize(recs), golds):
            for fld, g in gold.items():
                fv = fields[fld]
                if fld == "age_years":
                    if fv.value is None:
                        outcome = "missed"
                    else:
                        outcome = "right" if abs(float(fv.value) - g) <= max(0.1, 0.02 * g) else "wrong"
                    shown = (f"{g:g}", fv.value)
                elif fld == "sample_type":
                    outcome = "missed" if fv.value is None else ("right" if fv.value in g else "wrong")
                    shown = ("|".join(sorted(g)), fv.value)
                else:
                    must, ok = g
                    outcome = score_term(index, fv.ontology_id, must, ok)
                    shown = ("|".join(sorted(f"{index.label(t) or t}" for t in must)),
                             index.label(fv.ontology_id) or fv.ontology_id)
                counts[fld][outcome] += 1
                counts[fld]["labelled"] += 1
                if outcome != "right":
                    confusion[fld][(shown[0], shown[1] or "(none)")] += 1
        per_field = {}
        for fld, c in counts.items():
            answered = c["right"] + c["partly"] + c["wrong"]
            per_field[fld] = {
                "labelled": c["labelled"], "answered": answered, "right": c["right"], "partly": c["partly"],
                "wrong": c["wrong"], "missed": c["missed"],
                "precision": round(c["right"] / answered, 4) if answered else None,
                "recall": round(c["right"] / c["labelled"], 4) if c["labelled"] else None,
            }
            total.update({k: c[k] for k in ("labelled", "right", "partly", "wrong", "missed")})
        worst = min(per_field, key=lambda f: per_field[f]["recall"] or 0) if per_field else None
        results["datasets"][name] = {
            "file": str(path), "records": len(rows), "fields": per_field,
            "micro_recall": round(sum(c["right"] for c in counts.values()) / max(1, sum(c["labelled"] for c in counts.values())), 4),
            "worst_field": worst,
            "worst_confusion": [{"label": k[0], "answer": k[1], "n": n} for k, n in confusion[worst].most_common(15)] if worst else [],
        }
        results["notes"][name] = dict(notes)
    results["overall"] = {"labelled": total["labelled"], "right": total["right"], "partly": total["partly"],
                          "wrong": total["wrong"], "missed": total["missed"],
                          "right_share": round(total["right"] / max(1, total["labelled"]), 4)}
    results["llm_calls"] = harm.llm.report.calls
    return results


def format_report(res: dict) -> str:
    lines = []
    for name, d in res["datasets"].items():
        lines.append(f"== {name}: {d['records']} records ({d['file']})")
        lines.append(f"{'field':<14}{'labelled':>9}{'answered':>9}{'right':>7}{'partly':>7}{'wrong':>7}{'missed':>7}"
                     f"{'precision':>10}{'recall':>8}")
        for fld, m in sorted(d["fields"].items()):
            p = "-" if m["precision"] is None else f"{m['precision']:.3f}"
            r = "-" if m["recall"] is None else f"{m['recall']:.3f}"
            lines.append(f"{fld:<14}{m['labelled']:>9}{m['answered']:>9}{m['right']:>7}{m['partly']:>7}{m['wrong']:>7}"
                         f"{m['missed']:>7}{p:>10}{r:>8}")
        lines.append(f"fields right: {d['micro_recall']:.3f}; worst field: {d['worst_field']} - confusion (label -> answer):")
        for c in d["worst_confusion"]:
            lines.append(f"  {c['n']:>4}  {c['label'][:50]:<50} -> {str(c['answer'])[:50]}")
        if res["notes"].get(name):
            lines.append("notes: " + "; ".join(f"{k}: {v}" for k, v in res["notes"][name].items()))
    o = res["overall"]
    lines.append(f"== overall: {o['right']}/{o['labelled']} fields right ({o['right_share']:.3f}), "
                 f"partly {o['partly']}, wrong {o['wrong']}, missed {o['missed']}; LLM calls {res['llm_calls']}")
    return "\n".join(lines)


def markdown_table(res: dict) -> str:
    lines = ["| dataset | field | labelled | right | partly | wrong | missed | precision | recall |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, d in res["datasets"].items():
        for fld, m in sorted(d["fields"].items()):
            lines.append(f"| {name} | {fld} | {m['labelled']} | {m['right']} | {m['partly']} | {m['wrong']} | "
                         f"{m['missed']} | {m['precision'] if m['precision'] is not None else '-'} | "
                         f"{m['recall'] if m['recall'] is not None else '-'} |")
    o = res["overall"]
    lines.append(f"| **all** | **all fields** | {o['labelled']} | {o['right']} | {o['partly']} | {o['wrong']} | "
                 f"{o['missed']} | | **{o['right_share']}** |")
    return "\n".join(lines)
