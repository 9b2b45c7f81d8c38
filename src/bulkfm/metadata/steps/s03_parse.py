"""Step 3: rules over the values: sex, age (and a prenatal stage), sample type, perturbation,
dose, time, technical terms from keyed values; sex and age stated in free text."""

from __future__ import annotations

import re

from bulkfm.metadata.confidence import CONF
from bulkfm.metadata.records import Candidate, Candidates, KeyedValue, Pieces
from bulkfm.metadata.rules import explicit_sample_type, gene_symbol, not_a_line, parse_age, parse_dose, parse_sex
from bulkfm.metadata.rules import parse_time, perturbation_type, sex_in_text, sra_term
from bulkfm.metadata.steps import TECHNICAL, Tools

AGE_TEXT = re.compile(r"(?:\bage[d]?\s*[:=]?\s*(\d+(?:\.\d+)?)(?:\s*(years?|yrs?|y|months?|mo|weeks?|wk|days?))?)|"
                      r"(\d+(?:\.\d+)?)\s*(?:-|\s)?(years?|yrs?|y|months?|weeks?|days?)\s*(?:-|\s)?old")
# dose/time and filler words stripped so 'doxorubicin 1uM 24h' looks up 'doxorubicin'
_DOSE_TIME = re.compile(r"\d+(?:\.\d+)?\s*(?:[pnuµμm]?m|ng/ml|ug/ml|µg/ml|mg/ml|%|h|hr|hrs|hours?|min|d|days?)\b", re.I)
_FILLER = re.compile(r"\b(treated with|treatment|treated|for|with|of|and|at)\b", re.I)
GENETIC = ("CRISPR KO", "CRISPRi", "CRISPRa", "RNAi", "overexpression")  # identity: the gene's symbol
NOT_GENETIC = (None, "compound", "control", "biologic")  # identity: a ChEBI compound, if named
KEPT_AS_TEXT = ("biologic", "infection", "environmental")  # identity: the value's core text
PERTURBATION_CHARS = 80


def parsed_values(tools: Tools, pieces: Pieces, cands: Candidates) -> None:
    """Rule candidates, after the exact ones (candidate order breaks ties when combining)."""
    for kv in pieces.keyed:
        keyed_rule(tools, kv, cands)
    for piece in pieces.texts:
        s = sex_in_text(piece.text)
        if s:
            cands["sex"].append(Candidate(s[1], s[0], piece.source, "rule", CONF.text_sex, piece.text))
        m = AGE_TEXT.search(piece.text.lower())
        if m:
            num, unit = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
            years, _ = parse_age(f"{num} {unit or ''}")
            if years is not None:
                cands["age_years"].append(Candidate(None, f"{years:g}", piece.source, "rule", CONF.text_age,
                                                    piece.text))


def keyed_rule(tools: Tools, kv: KeyedValue, cands: Candidates) -> None:
    """The rule for the field a key names, on its value."""
    key, value, fld, weight = kv.key, kv.value, kv.field, kv.weight
    add = _adder(kv, cands)

    if fld == "sex":
        s = parse_sex(value)
        if s:
            add("sex", s[1], s[0], CONF.rule * weight)
    elif fld == "age_years":
        years, prenatal = parse_age(value, key)
        if years is not None:
            add("age_years", None, f"{years:g}", CONF.rule * weight)
        if prenatal:
            hits = tools.matcher.lookup("development_stage", f"{prenatal} stage")
            if hits:
                add("development_stage", hits[0].id, tools.index.label(hits[0].id), CONF.prenatal_stage)
    elif fld == "sample_type" or fld == "cell_line" and not_a_line(value):
        st = explicit_sample_type(value)
        if st:
            add("sample_type", None, st, CONF.sample_type_key * weight)
    elif fld == "perturbation_identity":
        perturbation(tools, kv, cands)
    elif fld == "perturbation_type":
        pt = perturbation_type(value)
        if pt:
            add("perturbation_type", None, pt, CONF.perturbation_type_key)
    elif fld == "dose":
        d = parse_dose(value)
        if d:
            add("dose", None, d, CONF.rule * weight)
    elif fld == "time":
        t = parse_time(value)
        if t:
            add("time", None, t, CONF.rule * weight)
    elif fld in TECHNICAL:
        t = sra_term(fld, value)
        if t:
            add(fld, None, t[0], t[1] * CONF.technical_in_attributes)


def perturbation(tools: Tools, kv: KeyedValue, cands: Candidates) -> None:
    """A perturbation value: its identity (gene, compound or text), type, and any dose/time in it."""
    value = kv.value
    add = _adder(kv, cands)

    ptype = perturbation_type(value)
    core = _FILLER.sub(" ", _DOSE_TIME.sub(" ", value)).strip(" ,;:-")
    chebi = tools.index.find(core, ("CHEBI",)) if core else []
    conf = CONF.perturbation * min(1.0, kv.weight + CONF.perturbation_key_bonus)
    if ptype in GENETIC:
        sym = gene_symbol(value)
        if sym:
            add("perturbation_identity", None, sym, conf)
    elif chebi and ptype in NOT_GENETIC:
        tid = tools.index.resolve(chebi[0][0])
        if tid:
            add("perturbation_identity", tid, tools.index.label(tid), CONF.compound, "lexicon")
            ptype = ptype or "compound"
    elif ptype in KEPT_AS_TEXT and core:
        add("perturbation_identity", None, core[:PERTURBATION_CHARS], CONF.perturbation_free)
    if ptype:
        add("perturbation_type", None, ptype, conf)
    d, t = parse_dose(value), parse_time(value)
    if d:
        add("dose", None, d, CONF.perturbation_dose_time)
    if t:
        add("time", None, t, CONF.perturbation_dose_time)


def _adder(kv: KeyedValue, cands: Candidates):
    """add(field, id, value, confidence[, method]): a candidate from this keyed value."""
    def add(field: str, tid: str | None, val: str, conf: float, method: str = "rule") -> None:
        cands[field].append(Candidate(tid, val, kv.key, method, conf, kv.value))
    return add
