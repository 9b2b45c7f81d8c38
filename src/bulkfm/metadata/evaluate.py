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
  female/male organism); for a named line with no sex label, the sex MetaSRA's consequent terms
  give (derived from the line) is scored as the separate row 'sex_line'. Age: EFO 'age' real-value property with its UO unit (no unit: years),
  right within 2 % (or 0.1 year). Sample type: MetaSRA classes mapped to ours (tissue -> primary
  tissue or xenograft, primary_cells -> primary cells, cell_line -> cell line,
  in_vitro_differentiated_cells -> in-vitro differentiated or organoid (MetaSRA has neither xenograft
  nor organoid), induced_pluripotent_stem_cells -> cell line, stem_cells -> cell line or
  primary cells: ESC lines are cell lines, sorted HSCs primary cells); 'TODO'/missing not scored.
- txt2onto: the one manual label (UBERON -> tissue, CL -> cell type) of each GEO sample's text.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections import Counter, defaultdict
from pathlib import Path

from bulkfm.metadata.matcher import organism_level
from bulkfm.metadata.ontology import TermIndex, prefix_of
from bulkfm.metadata.pipeline import Harmonizer, RawRecord
from bulkfm.metadata.schema import FEMALE, MALE

SCORED = ("tissue", "cell_type", "cell_line", "sex", "age_years", "sample_type", "disease")
SCORED_AS = {"sex_line": "sex"}  # a scored row -> the harmonized field it reads
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
    elif not sexes and any(prefix_of(t) == "CVCL" for t in explicit):
        # the sex MetaSRA derived from the line's record (consequent terms) when no label states
        # one: scored apart as 'sex_line' (the sex a named line implies)
        implied = {_SEX_TERMS[t] for t in consequent if t in _SEX_TERMS}
        if len(implied) == 1:
            gold["sex_line"] = (implied, implied)
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


def _load(path: str | Path, index: TermIndex, notes: Counter,
          limit: int | None) -> tuple[str, list[RawRecord], list[dict], list[str]] | None:
    """(dataset name, records, gold per record, study per record) of one labelled file."""
    rows = _read_jsonl(path, limit)
    if not rows:
        return None
    # the study a record comes from: its GEO series (txt2onto) or submitter template (MetaSRA's
    # attribute-key set), as the data's README defines the split; group_id carries it
    if "text_processed" in rows[0]:
        recs = [RawRecord(sample_id=r["gsm"], text=r["text_processed"]) for r in rows]
        golds = []
        for r in rows:
            lab = r["labels_unpropagated"][0]
            fld = "tissue" if lab.startswith("UBERON") else "cell_type"
            golds.append({fld: ({lab}, {lab})})
        studies = [r.get("group_id") or f"geo_{r.get('gse', '')}" for r in rows]
        return "txt2onto", recs, golds, studies
    recs = [RawRecord(sample_id=r.get("sample_accession") or str(i), attributes=r.get("attributes") or {})
            for i, r in enumerate(rows)]
    golds = [metasra_gold(r, index, notes) for r in rows]
    studies = [r.get("group_id") or "keys:" + "|".join(sorted(r.get("attributes") or {})) for r in rows]
    return "metasra", recs, golds, studies


def _outcome(index: TermIndex, fld: str, fv, g) -> tuple[str, tuple]:
    if fld == "age_years":
        if fv.value is None:
            return "missed", (f"{g:g}", None)
        return ("right" if abs(float(fv.value) - g) <= max(0.1, 0.02 * g) else "wrong"), (f"{g:g}", fv.value)
    if fld == "sample_type":
        return ("missed" if fv.value is None else ("right" if fv.value in g else "wrong")), ("|".join(sorted(g)), fv.value)
    must, ok = g
    return score_term(index, fv.ontology_id, must, ok), (
        "|".join(sorted(f"{index.label(t) or t}" for t in must)), index.label(fv.ontology_id) or fv.ontology_id)


def _field_table(counts: dict[str, Counter]) -> dict:
    per_field = {}
    for fld, c in counts.items():
        answered = c["right"] + c["partly"] + c["wrong"]
        per_field[fld] = {
            "labelled": c["labelled"], "answered": answered, "right": c["right"], "partly": c["partly"],
            "wrong": c["wrong"], "missed": c["missed"],
            "precision": round(c["right"] / answered, 4) if answered else None,
            "recall": round(c["right"] / c["labelled"], 4) if c["labelled"] else None,
        }
    return per_field


def _share(outcomes: list[tuple]) -> float | None:
    return round(sum(o[3] == "right" for o in outcomes) / len(outcomes), 4) if outcomes else None


def fold_of(study: str, k: int) -> int:
    """Deterministic fold of a study (not of a record): every record of a study in one fold."""
    return int(hashlib.sha1(study.encode()).hexdigest()[:8], 16) % k


def _spread(values: list[float]) -> dict:
    values = [v for v in values if v is not None]
    if not values:
        return {"mean": None, "sd": None, "min": None, "max": None, "n": 0}
    mean = sum(values) / len(values)
    sd = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5 if len(values) > 1 else 0.0
    return {"mean": round(mean, 4), "sd": round(sd, 4), "min": round(min(values), 4), "max": round(max(values), 4),
            "n": len(values)}


def leave_study_out(outcomes: list[tuple], k: int, untouched: set[tuple[str, str]] | None = None) -> dict:
    """Per-fold scores with the dev records split by study into ``k`` folds.

    ``outcomes``: (dataset, study, field, outcome) per scored field. A fold's score is its share
    of fields right; reported as mean, sd, min and max over folds, overall, per dataset and per
    (dataset, field). ``untouched``: the (dataset, study) pairs no bundled entry acts on; the same
    summary restricted to them, and their pooled score."""
    def summary(rows: list[tuple]) -> dict:
        by_fold: dict[int, list[tuple]] = defaultdict(list)
        for o in rows:
            by_fold[fold_of(o[1], k)].append(o)
        out = {"all": _spread([_share(by_fold[f]) for f in range(k)]), "pooled": _share(rows),
               "fields": len(rows), "studies": len({(o[0], o[1]) for o in rows}), "datasets": {}, "per_field": {}}
        for ds in sorted({o[0] for o in rows}):
            sub = [o for o in rows if o[0] == ds]
            out["datasets"][ds] = {"spread": _spread([_share([o for o in sub if fold_of(o[1], k) == f])
                                                      for f in range(k)]), "pooled": _share(sub)}
            for fld in sorted({o[2] for o in sub}):
                fs = [o for o in sub if o[2] == fld]
                out["per_field"][f"{ds}:{fld}"] = {
                    "labelled": len(fs), "pooled": _share(fs),
                    "spread": _spread([_share([o for o in fs if fold_of(o[1], k) == f]) for f in range(k)])}
        return out

    res = {"k": k, "folds": summary(outcomes)}
    if untouched is not None:
        res["untouched"] = summary([o for o in outcomes if (o[0], o[1]) in untouched])
        res["untouched_studies"] = sorted(f"{ds}:{st}" for ds, st in untouched)
    return res


def bare_resources(directory: str | None, dest: str | Path) -> Path:
    """A copy of the resource directory with every entry written from data removed (lexicon,
    inference tables, cell-line records): only the key aliases, text keys and the LLM prompt
    stay. Studies whose answers are the same with it are 'untouched' by the bundled entries."""
    from bulkfm.metadata.resources import resource_dir

    src, dest = resource_dir(directory), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.is_file():
            keep = f.name in KEEP_IN_BARE
            (dest / f.name).write_text(f.read_text(encoding="utf-8") if keep else "# emptied\n", encoding="utf-8")
    return dest


KEEP_IN_BARE = frozenset({"key_aliases.tsv", "text_keys.tsv", "llm_prompt.txt"})


def evaluate_files(paths: list[str], harm: Harmonizer, index: TermIndex, limit: int | None = None,
                   folds: int | None = None, bare: Harmonizer | None = None) -> dict:
    """Score ``harm`` on labelled files. ``folds``: also the leave-study-out summary; ``bare``:
    the same harmonizer without bundled entries (bare_resources), to find untouched studies."""
    results: dict = {"datasets": {}, "notes": {}}
    total = Counter()
    all_outcomes: list[tuple] = []
    changed: set[tuple[str, str]] = set()
    studies_seen: set[tuple[str, str]] = set()
    for path in paths:
        notes: Counter = Counter()
        loaded = _load(path, index, notes, limit)
        if loaded is None:
            continue
        name, recs, golds, studies = loaded
        counts: dict[str, Counter] = defaultdict(Counter)
        confusion: dict[str, Counter] = defaultdict(Counter)
        outputs = [fields for _rec, fields in harm.harmonize(recs)]
        if bare is not None:
            for (_rec, bfields), fields, study in zip(bare.harmonize(recs), outputs, studies):
                if any((fields[f].ontology_id, fields[f].value) != (bfields[f].ontology_id, bfields[f].value)
                       for f in SCORED):
                    changed.add((name, study))
        for fields, gold, study in zip(outputs, golds, studies):
            studies_seen.add((name, study))
            for fld, g in gold.items():
                outcome, shown = _outcome(index, fld, fields[SCORED_AS.get(fld, fld)], g)
                counts[fld][outcome] += 1
                counts[fld]["labelled"] += 1
                all_outcomes.append((name, study, fld, outcome))
                if outcome != "right":
                    confusion[fld][(shown[0], shown[1] or "(none)")] += 1
        per_field = _field_table(counts)
        for c in counts.values():
            total.update({k: c[k] for k in ("labelled", "right", "partly", "wrong", "missed")})
        worst = min(per_field, key=lambda f: per_field[f]["recall"] or 0) if per_field else None
        results["datasets"][name] = {
            "file": str(path), "records": len(recs), "studies": len(set(studies)), "fields": per_field,
            "micro_recall": round(sum(c["right"] for c in counts.values()) / max(1, sum(c["labelled"] for c in counts.values())), 4),
            "worst_field": worst,
            "worst_confusion": [{"label": k[0], "answer": k[1], "n": n} for k, n in confusion[worst].most_common(15)] if worst else [],
        }
        results["notes"][name] = dict(notes)
    results["overall"] = {"labelled": total["labelled"], "right": total["right"], "partly": total["partly"],
                          "wrong": total["wrong"], "missed": total["missed"],
                          "right_share": round(total["right"] / max(1, total["labelled"]), 4)}
    if folds:
        results["leave_study_out"] = leave_study_out(all_outcomes, folds,
                                                     studies_seen - changed if bare is not None else None)
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
    lso = res.get("leave_study_out")
    if lso:
        for part in ("folds", "untouched"):
            d = lso.get(part)
            if not d:
                continue
            a = d["all"]
            what = "all studies" if part == "folds" else "studies no bundled entry acts on"
            lines.append(f"== leave-study-out, {lso['k']} folds, {what} ({d['studies']} studies, {d['fields']} fields): "
                         f"mean {_pct(a['mean'])} ± {_pct(a['sd'])} (min {_pct(a['min'])}, max {_pct(a['max'])}), "
                         f"pooled {_pct(d['pooled'])}")
            for ds, v in d["datasets"].items():
                sp = v["spread"]
                lines.append(f"   {ds:<10} mean {_pct(sp['mean'])} ± {_pct(sp['sd'])}, pooled {_pct(v['pooled'])}")
    return "\n".join(lines)


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


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


def markdown_lso(res: dict) -> str:
    """Per-field table of the leave-study-out protocol (fold mean ± sd; untouched studies)."""
    lso = res.get("leave_study_out")
    if not lso:
        return ""
    f, u = lso["folds"], lso.get("untouched") or {"per_field": {}, "datasets": {}}
    lines = [f"| dataset | field | labelled | plain % | {lso['k']}-fold mean ± sd % | fold min–max % | "
             "untouched labelled | untouched % | untouched fold mean ± sd % |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]

    def row(name: str, fld: str, a: dict, b: dict | None, n: int | None) -> str:
        sp = a["spread"] if "spread" in a else a["all"]
        ub = (b.get("spread") or b.get("all")) if b else None
        return (f"| {name} | {fld} | {n if n is not None else a.get('labelled', '')} | {_pct(a['pooled'])} | "
                f"{_pct(sp['mean'])} ± {_pct(sp['sd'])} | {_pct(sp['min'])}–{_pct(sp['max'])} | "
                f"{(b or {}).get('labelled', (b or {}).get('fields', 0))} | {_pct((b or {}).get('pooled'))} | "
                f"{_pct(ub['mean']) if ub else '-'} ± {_pct(ub['sd']) if ub else '-'} |")
    for key, v in f["per_field"].items():
        ds, fld = key.split(":", 1)
        lines.append(row(ds, fld, v, u["per_field"].get(key), None))
    for ds, v in f["datasets"].items():
        n = sum(x["labelled"] for k, x in f["per_field"].items() if k.startswith(ds + ":"))
        ub = u["datasets"].get(ds)
        if ub:
            ub = dict(ub, labelled=sum(x["labelled"] for k, x in u["per_field"].items() if k.startswith(ds + ":")))
        lines.append(row(f"**{ds}**", "**all fields**", v, ub, n))
    lines.append(row("**all**", "**all fields**", f, lso.get("untouched"), f["fields"]))
    return "\n".join(lines)
