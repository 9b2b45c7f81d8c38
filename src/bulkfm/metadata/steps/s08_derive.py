"""Step 8: fields that follow from other fields, in dependency order (``derive``): a cell line's
record, answers inferred between fields, the sex of a one-sex organ, a sharper cell type, the
development stage from age, the sample type, and 'cultured cell' for a line's cells."""

from __future__ import annotations

import re

from bulkfm.metadata.confidence import CONF
from bulkfm.metadata.keys import match_key
from bulkfm.metadata.lines import LineRecord, organ_sex
from bulkfm.metadata.records import RawRecord, ReviewItem
from bulkfm.metadata.rules import NOT_CELLS, is_null, not_a_line, sample_type_from
from bulkfm.metadata.schema import NORMAL, FieldValue
from bulkfm.metadata.steps import SOURCE_CHARS, Tools

Fields = dict[str, FieldValue]

STEM_CELL = "CL:0000034"
CULTURED_CELL = "CL:0000010"
# Cell types grown in culture before profiling, practically always (a 'cell line' sample type):
# fibroblast, endothelial cell, smooth muscle cell, stromal cell, keratinocyte, chondrocyte,
# myoblast, mesenchymal stem cell, melanocyte, osteoblast.
CULTURE_CELL_TYPES = ("CL:0000057", "CL:0000115", "CL:0000192", "CL:0000499", "CL:0000312", "CL:0000138",
                      "CL:0000056", "CL:0000134", "CL:0000148", "CL:0000062")
USUAL_SITE = {"CL:0000057": "CL:0002620"}  # fibroblast -> skin fibroblast
ISLETS = re.compile(r"\bislets?\b")
LINE_RECORD_FIELDS = ("sex", "disease", "tissue", "cell_type")
OLDEST_STAGE_YEARS, YOUNGEST_YEAR_STAGE = 80, 2  # HsapDv: '80 year-old and over'; 'N-year-old' from 2


def derive(tools: Tools, rec: RawRecord, f: Fields) -> list[ReviewItem]:
    """Fill (or sharpen) fields from others, in order; review items for what the cell line's
    record contradicts or lacks."""
    conflicts = line_record(tools, f)
    implied(tools, f)
    sex_of_organ(tools, f)
    compose_cell_type(tools, f)
    usual_site(tools, rec, f)
    development_stage(tools, f)
    sample_type(tools, rec, f)
    cultured_cell(tools, f)
    return conflicts


# ---------------------------------------------------------------- the cell line's record
def line_record(tools: Tools, f: Fields) -> list[ReviewItem]:
    """Sex, disease, tissue of origin and cell type of a known line's record (lines.py), where
    no label gives them: method 'rule', the record in ``source``, confidence under review. A
    label the record contradicts (sex, disease) is kept and listed for review; so is a line
    whose record has no sex when the sample states none."""
    cl = f["cell_line"]
    if not cl.ontology_id or cl.confidence < CONF.line_record_min or not cl.ontology_id.startswith("CVCL_"):
        return []
    rec = tools.lines.record(cl.ontology_id)
    conf = CONF.inferred(cl.confidence)
    where = f"{cl.source} (cell line {rec.name})"
    items: list[ReviewItem] = []
    found = {"sex": rec.sex[1] if rec.sex else None, "disease": rec.disease, "tissue": rec.tissue,
             "cell_type": rec.cell_type}
    for fld in LINE_RECORD_FIELDS:
        tid, cur = found[fld], f[fld]
        if tid is None:
            if fld == "sex" and cur.empty:
                items.append(ReviewItem(fld, f"cell line {rec.name}",
                                        FieldValue(None, None, f"{where}: its record has no sex"), []))
            continue
        value = rec.sex[0] if fld == "sex" and rec.sex else tools.index.label(tid)
        if cur.empty:
            f[fld] = FieldValue(value, tid, f"{where}: {rec.basis.get(fld, 'record')}"[:SOURCE_CHARS], "rule", conf)
        elif fld in ("sex", "disease") and contradicts(tools, cur, tid):
            items.append(_contradiction(rec, fld, cur, tid, value))
    return items


def contradicts(tools: Tools, cur: FieldValue, tid: str) -> bool:
    """A sure label that is neither the record's term nor above or below it."""
    return bool(cur.ontology_id and cur.confidence > CONF.inferred_ceiling and not (
        cur.ontology_id == tid or tools.index.is_a(cur.ontology_id, tid) or tools.index.is_a(tid, cur.ontology_id)))


def _contradiction(rec: LineRecord, fld: str, cur: FieldValue, tid: str, value: str | None) -> ReviewItem:
    source = (f"{cur.source}; contradicts cell line {rec.name} record "
              f"({rec.basis.get(fld, 'record')}): {value}")[:SOURCE_CHARS]
    return ReviewItem(fld, f"{cur.value} / cell line {rec.name}: {value}",
                      FieldValue(cur.value, cur.ontology_id, source, cur.method, cur.confidence), [tid])


# ---------------------------------------------------------------- inferred between fields
def _inferred(tools: Tools, tid: str, basis: FieldValue, name: str) -> FieldValue:
    return FieldValue(tools.index.label(tid), tid, f"{basis.source} ({name})"[:SOURCE_CHARS], "rule",
                      CONF.inferred(basis.confidence))


def implied(tools: Tools, f: Fields) -> None:
    """Cell type from the disease's cell of origin; tissue from the cell type or disease; the
    tissue's class; 'epithelial cell' + tissue -> that tissue's epithelium (infer.py). Only empty
    fields are filled (or an answer sharpened to a term below it), at a confidence below review."""
    cell_of_origin(tools, f)
    tissue_from_others(tools, f)
    tissue_class(tools, f)
    epithelium(tools, f)


def cell_of_origin(tools: Tools, f: Fields) -> None:
    """A cancer's cell of origin fills the cell type, or sharpens a general one ('leukocyte' + AML)."""
    ds, ct = f["disease"], f["cell_type"]
    if not ds.ontology_id or ds.ontology_id == NORMAL:
        return
    origin = tools.infer.cell_type_from_disease(ds.ontology_id)
    if origin and (ct.empty or (ct.ontology_id and origin != ct.ontology_id
                                and tools.index.is_a(origin, ct.ontology_id))):
        f["cell_type"] = _inferred(tools, origin, ds, "cell of origin")


def tissue_from_others(tools: Tools, f: Fields) -> None:
    """An empty tissue from the cell type's home, else from the tissue the disease names."""
    ds, ct = f["disease"], f["cell_type"]
    if f["tissue"].empty and ct.ontology_id:
        tid = tools.infer.tissue_from_cell_type(ct.ontology_id)
        if tid:
            f["tissue"] = _inferred(tools, tid, ct, "cell type")
    if f["tissue"].empty and ds.ontology_id and ds.ontology_id != NORMAL:
        tid = tools.infer.tissue_from_disease(ds.ontology_id)
        if tid:
            f["tissue"] = _inferred(tools, tid, ds, "disease")


def tissue_class(tools: Tools, f: Fields) -> None:
    """A named skeletal muscle is reported as the class profiled (infer.tissue_class)."""
    ts = f["tissue"]
    tid = tools.infer.tissue_class(ts.ontology_id) if ts.ontology_id else None
    if tid and tid != ts.ontology_id:
        f["tissue"] = FieldValue(tools.index.label(tid), tid, ts.source, ts.method, ts.confidence)


def epithelium(tools: Tools, f: Fields) -> None:
    """Epithelial cells of a found (not inferred) tissue: that tissue's epithelium."""
    ct, ts = f["cell_type"], f["tissue"]
    if ts.ontology_id and ct.ontology_id and ts.method != "rule":
        tid = tools.infer.epithelium(ts.ontology_id, ct.ontology_id)
        if tid:
            f["tissue"] = FieldValue(tools.index.label(tid), tid, f"{ts.source}+{ct.source}"[:SOURCE_CHARS],
                                     ts.method, round(min(ts.confidence, ct.confidence), 3))


# ---------------------------------------------------------------- sex, cell type, stage
def sex_of_organ(tools: Tools, f: Fields) -> None:
    """A sample of an organ of one sex (ovary, uterus, cervix; prostate, testis) is that sex
    when nothing states one (lines.organ_sex): method 'rule', under review."""
    ts = f["tissue"]
    if f["sex"].empty and ts.ontology_id:
        s = organ_sex(tools.index, ts.ontology_id)
        if s:
            f["sex"] = FieldValue(s[0], s[1], f"{ts.source} (tissue {ts.value}: {s[0]} reproductive organ)"[:SOURCE_CHARS],
                                  "rule", CONF.inferred(ts.confidence))


def compose_cell_type(tools: Tools, f: Fields) -> None:
    """'fibroblast' + tissue 'lung' -> 'fibroblast of lung' when CL has that term."""
    ct, ts = f["cell_type"], f["tissue"]
    if ct.ontology_id and ts.ontology_id and ct.method in ("lexicon", "embedding", "rule"):
        sharper = tools.matcher.compose(ct.ontology_id, ts.ontology_id)
        if sharper:
            f["cell_type"] = FieldValue(tools.index.label(sharper), sharper, f"{ct.source}+{ts.source}"[:SOURCE_CHARS],
                                        ct.method, round(min(ct.confidence, ts.confidence), 3))


def usual_site(tools: Tools, rec: RawRecord, f: Fields) -> None:
    """A cell type whose human cultures come from one site unless said otherwise (fibroblasts:
    skin biopsies, the Coriell and ATCC lines) is that site's kind when no tissue is named (not
    even one left unresolved, 'tissue: Dura') and no line is named (a line's record says where it
    comes from: SW1353 'fibroblasts' are a chondrosarcoma's); the tissue stays empty."""
    ct = f["cell_type"]
    site = USUAL_SITE.get(ct.ontology_id or "")
    stated = any(match_key(k, tools.resources).field == "tissue" and v and not is_null(str(v))
                 for k, v in rec.attributes.items())
    if site and f["tissue"].empty and f["cell_line"].empty and not stated:
        f["cell_type"] = FieldValue(tools.index.label(site), site, f"{ct.source} (usual site of its cultures)"[:SOURCE_CHARS],
                                    "rule", CONF.inferred(ct.confidence))


def development_stage(tools: Tools, f: Fields) -> None:
    """Development stage from age ('48' -> '48-year-old stage')."""
    age = f["age_years"]
    if not f["development_stage"].empty or age.value is None:
        return
    years = float(age.value)
    label = ("80 year-old and over stage" if years >= OLDEST_STAGE_YEARS
             else (f"{int(years)}-year-old stage" if years >= YOUNGEST_YEAR_STAGE else None))
    hits = tools.index.find(label, ("HsapDv",)) if label else []
    if hits:
        f["development_stage"] = FieldValue(tools.index.label(hits[0][0]), hits[0][0], age.source, "rule",
                                            round(age.confidence * CONF.development_stage_share, 3))


# ---------------------------------------------------------------- sample type
def sample_type(tools: Tools, rec: RawRecord, f: Fields) -> None:
    """Sample type from all raw text and what the other fields found."""
    stated = [(match_key(k, tools.resources).field, str(v)) for k, v in rec.attributes.items()
              if v and not is_null(str(v))]
    text = " ".join([*(f"{k} {v}" for k, v in rec.attributes.items() if v and not is_null(str(v))), rec.text,
                     rec.sra.get("title", "") or "", rec.sra.get("description", "") or ""])
    explicit = f["sample_type"].value if not f["sample_type"].empty else None
    keys = {fld for fld, _ in stated}
    # a cell type found by evidence, not inferred (an inferred one says nothing about the sample)
    found = f["cell_type"].ontology_id if f["cell_type"].method != "rule" else None
    st, conf = sample_type_from(
        text,
        has_cell_line=not f["cell_line"].empty and f["cell_line"].confidence >= CONF.sample_type_line_min,
        has_cell_type=any(fld == "cell_type" and not NOT_CELLS.search(v.lower()) or fld == "tissue" and
                          tissue_names_cells(tools, v) for fld, v in stated),
        has_tissue=not f["tissue"].empty,
        cell_line_key=any(fld == "cell_line" and not not_a_line(v) for fld, v in stated),
        explicit=explicit,
        found_cell_type=bool(found),
        differentiated_cell_type=bool(found) and not tools.index.is_a(found, STEM_CELL),
        culture_cell_type=bool(found) and any(tools.index.is_a(found, c) for c in CULTURE_CELL_TYPES),
    )
    if st and (st != explicit or f["sample_type"].empty):
        src = f["sample_type"].source or "+".join(sorted(k for k in keys if k)) or "text"
        f["sample_type"] = FieldValue(st, None, src, "rule", conf)


def tissue_names_cells(tools: Tools, value: str) -> bool:
    """A tissue key's value that names cells ('alpha cell', 'sperm', 'beta cells') or islets
    (isolated by digestion: cells, not a piece of the pancreas)."""
    return bool(ISLETS.search(value.lower()) or not NOT_CELLS.search(value.lower()) and any(
        h.kind != "typo" for h in tools.matcher.lookup("cell_type", value)))


def cultured_cell(tools: Tools, f: Fields) -> None:
    """Cells of a line are 'cultured cell' (CL) by definition when nothing more is known."""
    st = f["sample_type"]
    if st.value == "cell line" and f["cell_type"].empty:
        f["cell_type"] = FieldValue(tools.index.label(CULTURED_CELL), CULTURED_CELL, f"{st.source} (sample type)",
                                    "rule", CONF.inferred(st.confidence))
