"""Rule-based value parsers: age, sex, dose, time, perturbation type, sample type, SRA vocabulary.

Each returns a value (and unit/ID) or None; none of them guesses: an unparseable value is None
so a later step (or the review queue) decides.
"""

from __future__ import annotations

import re

from bulkfm.metadata.confidence import CONF
from bulkfm.metadata.ontology import norm
from bulkfm.metadata.schema import FEMALE, MALE

NULL_VALUES = frozenset(
    norm(v)
    for v in (
        "na", "n/a", "nan", "null", "unknown", "unk", "not applicable", "not available", "missing",
        "not collected", "not determined", "not provided", "unspecified", "not specified", "--", "-",
        "?", "none provided", "not recorded", "undetermined", "no data", "nd",
    )
) | {""}


def is_null(value: str) -> bool:
    return norm(value) in NULL_VALUES


# ------------------------------------------------------------------------------------ sex
_FEMALE = {"female", "f", "woman", "women", "girl", "fem", "females", "xx"}
_MALE = {"male", "m", "man", "men", "boy", "males", "xy"}
_SEX_UNKNOWN = {"mixed", "pooled", "both", "male and female", "female and male", "mix", "hermaphrodite"}


def parse_sex(value: str) -> tuple[str, str | None] | None:
    """('female', PATO id) | ('male', id) | ('unknown', None) for mixed/pooled | None."""
    v = norm(value)
    if v in _FEMALE:
        return "female", FEMALE
    if v in _MALE:
        return "male", MALE
    if v in _SEX_UNKNOWN or ("male" in v.split() and "female" in v.split()):
        return "unknown", None
    return None


_SEX_WORDS = re.compile(r"(?<![a-z])(female|male|woman|man|women|men|girl|boy)(?![a-z])")


def sex_in_text(text: str) -> tuple[str, str] | None:
    """A sex stated in free text ('vastus lateralis_female'), only when unambiguous."""
    found = {("female" if w in ("female", "woman", "women", "girl") else "male")
             for w in _SEX_WORDS.findall(text.lower().replace("_", " "))}
    if len(found) != 1:
        return None
    return ("female", FEMALE) if "female" in found else ("male", MALE)


# ------------------------------------------------------------------------------------ age
_AGE_UNITS = {
    "y": 1.0, "yr": 1.0, "yrs": 1.0, "year": 1.0, "years": 1.0, "yo": 1.0, "yearsold": 1.0, "a": 1.0,
    "m": 1 / 12, "mo": 1 / 12, "mos": 1 / 12, "month": 1 / 12, "months": 1 / 12,
    "w": 1 / 52.1775, "wk": 1 / 52.1775, "wks": 1 / 52.1775, "week": 1 / 52.1775, "weeks": 1 / 52.1775,
    "d": 1 / 365.25, "day": 1 / 365.25, "days": 1 / 365.25,
}
_NUM = r"(\d+(?:\.\d+)?)"
_AGE_RE = re.compile(_NUM + r"(?:\s*(?:-|to|–)\s*" + _NUM + r")?\s*([a-z]+)?")
_PRENATAL = re.compile(r"fetal|fetus|foetal|gestation|post ?conception|pcw|\bgw\b|embryo|prenatal|\bwpc\b|\bwpf\b")


def parse_age(value: str, key: str = "") -> tuple[float | None, str | None]:
    """(age in years, prenatal-weeks-label) from '48', '7 Year old', '6 months', '40-45 y', '20 pcw'.

    Unit from the value, else from the key ('age (months)'), else years when plausible (<= 120).
    Prenatal ages give (None, '<n> weeks post-fertilization') for the development stage.
    """
    text = value.lower().replace(",", ".")
    m = _AGE_RE.search(text)
    if not m:
        return None, None
    lo = float(m.group(1))
    hi = float(m.group(2)) if m.group(2) else lo
    num = (lo + hi) / 2
    if _PRENATAL.search(text) or _PRENATAL.search(key.lower()):
        unit_word = (m.group(3) or "").lower()
        weeks = num if unit_word.startswith("w") or unit_word in ("pcw", "gw", "") else None
        return None, (f"{int(round(weeks))} weeks post-fertilization" if weeks is not None else None)
    unit = (m.group(3) or "").replace("old", "") or ""
    factor = _AGE_UNITS.get(unit)
    if factor is None and unit:
        # unit word glued to 'old' or plural ('yearsold', 'yrs') handled above; other words: try key
        factor = _AGE_UNITS.get(unit.rstrip("s"))
    if factor is None:
        key_words = norm(key).split()
        factor = next((_AGE_UNITS[w] for w in key_words if w in _AGE_UNITS and w != "a"), None)
    if factor is None:
        factor = 1.0 if num <= 120 else None
    if factor is None:
        return None, None
    years = num * factor
    if not 0 <= years <= 125:
        return None, None
    return round(years, 4), None


# ------------------------------------------------------------------------------------ dose, time
_MOLAR = {"pm": 1e-6, "nm": 1e-3, "um": 1.0, "µm": 1.0, "μm": 1.0, "mm": 1e3, "m": 1e6}
_DOSE_RE = re.compile(
    _NUM + r"\s*(pm|nm|um|µm|μm|mm|m|mol/l|ng/ml|ug/ml|µg/ml|μg/ml|mg/ml|pg/ml|mg/kg|ug/kg|%|iu/ml|u/ml|units/ml|moi)(?![a-z])"
)


def parse_dose(value: str) -> str | None:
    """'10uM' -> '10 µM', '100 nM' -> '0.1 µM' (molar normalised to µM); mass/volume kept."""
    m = _DOSE_RE.search(value.lower())
    if not m:
        return None
    num, unit = float(m.group(1)), m.group(2)
    if unit in _MOLAR:
        return f"{num * _MOLAR[unit]:g} µM"
    if unit == "mol/l":
        return f"{num * 1e6:g} µM"
    unit = unit.replace("u", "µ", 1) if unit.startswith("ug") else unit
    return f"{num:g} {unit.replace('ml', 'mL').replace('µg', 'µg')}"


_TIME_UNITS = {"min": 1 / 60, "mins": 1 / 60, "minute": 1 / 60, "minutes": 1 / 60, "m": 1 / 60,
               "h": 1.0, "hr": 1.0, "hrs": 1.0, "hour": 1.0, "hours": 1.0, "hpf": 1.0, "hpi": 1.0,
               "d": 24.0, "day": 24.0, "days": 24.0, "dpi": 24.0,
               "w": 168.0, "wk": 168.0, "wks": 168.0, "week": 168.0, "weeks": 168.0}
_TIME_RE = re.compile(_NUM + r"\s*(minutes?|mins?|m|hours?|hrs?|hpi|h|days?|dpi|d|weeks?|wks?|wk|w)(?![a-z])")
_TIME_PREFIX_RE = re.compile(r"(?<![a-z])(day|d|hour|h|week|wk)\s*" + _NUM)


def parse_time(value: str) -> str | None:
    """'24h' -> '24 h', 'day 3' -> '72 h', '30 min' -> '0.5 h' (normalised to hours)."""
    text = value.lower()
    m = _TIME_RE.search(text)
    if m:
        return f"{float(m.group(1)) * _TIME_UNITS[m.group(2)]:g} h"
    m = _TIME_PREFIX_RE.search(text)
    if m:
        return f"{float(m.group(2)) * _TIME_UNITS[m.group(1)]:g} h"
    return None


# ------------------------------------------------------------------------------------ perturbation
_PERT_RULES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (t, re.compile(p))
    for t, p in (
        ("control", r"^(untreated|control|ctrl|vehicle|mock|none|unstimulated|baseline|no treatment|"
                    r"non ?targeting|scrambled?|empty vector|sham|naive|pbs|dmso|dmso control|vehicle control|"
                    r"nt|sictrl|shctrl|sicontrol|shcontrol|sgctrl|sgcontrol|scr)$|non.?targeting|scrambl|"
                    r"empty vector|\bvehicle\b|\buntreated\b|\bmock\b"),
        ("CRISPRi", r"crispri|dcas9.?krab|\bkrab\b"),
        ("CRISPRa", r"crispra|dcas9.?(vp64|vpr|p300)|\bsam\b"),
        ("CRISPR KO", r"crispr|cas9|sgrna|\bsg[a-z0-9]|knock.?out|\bko\b|-/-|\bnull\b|deletion|\bdel\b"),
        ("RNAi", r"sirna|shrna|knock.?down|\bkd\b|rnai|\bsi[A-Z0-9]|\bsh[A-Z0-9]|mirna inhibitor|antisense|morpholino"),
        ("overexpression", r"over.?express|\boe\b|ectopic|transduc|transfect|expression vector|lentivir.*express|"
                           r"\btet.?on\b|doxycycline.?induc"),
        ("infection", r"infect|virus|viral|\bmoi\b|bacteri|\bhiv|influenza|sars|\bebv\b|cmv|mycobacter|"
                      r"salmonella|listeria|plasmodium|chlamydia|\bzika|dengue"),
        ("biologic", r"\bifn|interferon|\btnf|\bil.?\d|interleukin|\btgf|\begf\b|\bfgf|\bvegf|antibody|mab\b|"
                     r"cytokine|\blps\b|lipopolysaccharide|poly.?i.?c|\bgm.?csf|\bm.?csf|growth factor|"
                     r"anti.?cd3|cd28|serum\b|insulin\b|\bbmp\d|wnt3a|activin"),
        ("environmental", r"hypoxi|normoxi|heat shock|\bheat\b|cold|radiation|irradiat|\buv\b|\bgy\b|starv|"
                          r"serum.?free|shear stress|mechanical|stretch|glucose deprivation|oxidative stress"),
    )
)


def perturbation_type(value: str) -> str | None:
    """The perturbation type a treatment value describes, by keyword (None when unknown)."""
    text = value.strip()
    low = text.lower()
    for ptype, pat in _PERT_RULES:
        # the si/sh/sg gene-prefix patterns look at the original case (siTP53, shGATA3)
        if pat.search(low) or (ptype in ("RNAi", "CRISPR KO") and pat.search(text)):
            return ptype
    return None


_GENE_RE = re.compile(r"(?<![A-Za-z0-9])(?:si|sh|sg)?([A-Z][A-Z0-9]{1,9}(?:-[A-Z0-9]{1,4})?)(?![a-z])")
_NOT_GENES = {"CRISPR", "CRISPRI", "CRISPRA", "KO", "KD", "RNA", "RNAI", "SIRNA", "SHRNA", "SGRNA", "DNA",
              "DMSO", "PBS", "LPS", "OE", "WT", "NT", "CTRL", "GFP", "RFP", "EGFP", "LUC", "NA", "CAS9", "DCAS9",
              "KRAB", "VP64", "VPR", "MOI", "UV", "TET", "DOX", "CONTROL", "EMPTY", "VECTOR", "HEK", "HELA"}


def gene_symbol(value: str) -> str | None:
    """The gene a genetic perturbation targets ('siRNA against TP53', 'shGATA3' -> 'GATA3')."""
    for m in _GENE_RE.finditer(value):
        sym = m.group(1)
        if sym.upper() not in _NOT_GENES and not sym.isdigit() and any(c.isalpha() for c in sym):
            return sym
    return None


# ------------------------------------------------------------------------------------ sample type
_XENO = re.compile(r"xenograft|\bpdx\b|\bpdtx\b|engrafted (into|in) (nsg|nod|mice|mouse)|"
                   r"(tumou?r|cancer|melanoma|carcinoma)[- ]bearing (mice|mouse|nsg|nude)|\bhost mouse\b")
_ORGANOID = re.compile(r"organoid|tumoroid|enteroid|colonoid|assembloid")
_STEM = re.compile(r"\b(h?ipsc?s?|h?escs?|hes|hues\d*|es cells?|ips cells?|pluripotent|embryonic stem|"
                   r"induced pluripotent|stem cell line|es(?=[- ]derived))\b")
# a stem cell culture sampled on day N is a differentiation time course (lines are passaged, not
# dated); day 0 is its undifferentiated start
_DAYS = re.compile(r"\bday 0*[1-9]\d*|\bd0*[1-9]\d*\b|\b0*[1-9]\d* ?days?\b|\b0*[1-9]\d*d\b")
_DAY_ZERO = re.compile(r"\b(differentiation )?(days?|d) ?0+\b(?![.,]\d)")
_DIFF = re.compile(r"(?<!un)differentiat|derived|\binduced\b(?! pluripotent)|reprogramm|directed|\bdiff\b|"
                   r"\bday \d+ of|\bd\d+ (of )?differentiation|transdifferentiat|\bnpcs?\b|progenitors?\b")
_DIFF_ALONE = re.compile(r"in ?vitro (differentiated|derived)|(?<!un)differentiated (cells|into|from|with|for|in|using|"
                         r"\w*(cytes?|blasts?|neurons?|tubes?)\b)|\b(chondro|osteo|adipo|myo|neuro|cardio)genesis\b|"
                         r"\b(chondro|osteo|adipo)genic (differentiation|induction|medium)|"
                         r"\b(h?es|h?ipsc?)-(?!cells?\b|lines?\b|derived)[a-z]{2,}|"
                         r"(?<!un)differentiation (day|stage|time|protocol|method|medium)|\bderived (neurons?|"
                         r"macrophages?|cardiomyocytes?|hepatocytes?|organoids?)|reprogramming|"
                         r"\bnpcs?\b|neural progenitors?|neural precursors?")
# a cell-type value that names a tumour or a tissue does not make the sample isolated cells
NOT_CELLS = re.compile(r"carcinoma|cancer|tumou?r|sarcoma|leuka?emia|lymphoma|melanoma|glioma|blastoma|"
                        r"whole blood|tissue|biopsy")
_CELL_LINE = re.compile(r"cell ?lines?\b|immortali[sz]ed|lymphoblastoid|\blcls?\b|\batcc\b|\bdsmz\b|\bcoriell\b")
# Cells grown in culture: a 'cell line' in MetaSRA's sense (passaged primary cultures such as
# HUVEC or dermal fibroblasts included); 'primary cells' are isolated and profiled uncultured.
_CULTURED = re.compile(r"\bpassages? \d|\bp\d+ ?- ?\d+\b|\bpassaged\b|subcultur|\bcultured\b|\bcultures?\b|\bconfluen|"
                       r"\blonza\b|promocell|\bcell systems\b|\blifeline\b|\bcascade biologics\b|sciencell|\bgibco\b")
# immune cells activated or polarised in vitro (Th1 conditions, a mitogen): made in vitro, as
# MetaSRA classes them; 'unstimulated', 'pre-activated' and 'non-activated' are not
_ACTIVATED = re.compile(r"(?<![\w-])(?<!pre )(?<!non )(activated|activation|polari[sz](ed|ing|ation)|mitogens?)\b")
# cues that cells were profiled straight from the donor, not grown first
_UNCULTURED = re.compile(r"\bsorted\b|\bfacs\b|freshly|uncultured|ex vivo|\bmacs\b")
_CELLS_WORD = re.compile(r"\bcells\b|cytes\b|blasts\b|\bpbmcs?\b")
_PRIMARY_CELLS = re.compile(r"primary (cells?|culture)|\bsorted\b|\bfacs\b|\bmacs\b|isolated|purified|"
                            r"\bcells?\b|cytes?\b|blasts?\b|\bpbmcs?\b")
_TISSUE = re.compile(r"tissue|biopsy|biopsies|resection|autopsy|post.?mortem|surgical|necropsy|whole blood|"
                     r"\btumou?rs?\b|specimen")
_EXPLICIT_TYPES = (("xenograft", _XENO), ("organoid", _ORGANOID),
                   ("in-vitro differentiated", re.compile(r"in.?vitro differentiated|(?<!un)differentiated")),
                   ("cell line", re.compile(r"cell ?line|cell culture|cultured cells?|\bin culture\b")),
                   ("primary cells", re.compile(r"primary cells?|(?<!single )cells?\b(?! ?free)")),
                   ("primary tissue", re.compile(r"tissue|biopsy|surgical|primary tumou?r|whole blood")))


# a cell-line key's value that says the sample is no line ('cell_line: primary'; BioSample's
# Human package asks every sample for a cell line)
_NOT_A_LINE = re.compile(r"(primary|primary (tissues?|cells?|cultures?|samples?)|tissues?|biops(y|ies)|"
                         r"no|none|not a cell line|no cell line)")


def not_a_line(value: str) -> bool:
    """A cell-line key's value that names a kind of sample, not a line."""
    return bool(_NOT_A_LINE.fullmatch(norm(value)))


def explicit_sample_type(value: str) -> str | None:
    """A sample-type key's value ('Cell Line', 'tissue', 'primary cells') in our vocabulary."""
    low = value.lower()
    for stype, pat in _EXPLICIT_TYPES:
        if pat.search(low):
            return stype
    return None


def sample_type_from(text: str, *, has_cell_line: bool, has_cell_type: bool, has_tissue: bool,
                     cell_line_key: bool, explicit: str | None, found_cell_type: bool = False,
                     differentiated_cell_type: bool = False,
                     culture_cell_type: bool = False) -> tuple[str | None, float]:
    """Sample type from all raw text (keys and values) and what the other fields found.

    Order matters and encodes how samples are made: an iPSC-derived neuron is in-vitro
    differentiated even though a cell line is named; cells grown in culture (a named line, a
    passage number) are a cell line; a cell type named beside a tissue means cells were isolated
    from it (primary cells). ``has_cell_type``: a cell-type key has a value; ``found_cell_type``:
    a cell type was found anywhere; ``differentiated_cell_type``: it is not a stem cell;
    ``culture_cell_type``: a cell type only ever profiled after growth in culture (fibroblasts,
    endothelial or smooth muscle cells, keratinocytes...).
    """
    low = text.lower().replace("_", " ")
    if _XENO.search(low):
        return "xenograft", CONF.st_xenograft
    stem = bool(_STEM.search(low))
    # 'differentiation state: undifferentiated' describes a stem cell line, not a product of it
    undiff = bool(re.search(r"\bundifferentiated\b", low))
    low = _DAY_ZERO.sub(" ", low)
    diff = not undiff and bool(_DIFF.search(re.sub(r"differentiation (state|status|stage)", " ", low))
                               or _DAYS.search(low))
    if (stem and (diff or differentiated_cell_type and not undiff) or _DIFF_ALONE.search(low)
            or explicit == "in-vitro differentiated"):
        return "in-vitro differentiated", CONF.st_differentiated
    if _ORGANOID.search(low):
        return "organoid", CONF.st_organoid
    if explicit == "primary tissue" and (has_cell_line or cell_line_key):
        return "cell line", CONF.st_line_over_stated
    if explicit == "primary cells" and has_cell_line:
        return "cell line", CONF.st_line_over_stated  # 'cells' said of a named line
    if explicit in ("cell line", "primary cells", "primary tissue"):
        return explicit, CONF.st_stated
    if has_cell_line or cell_line_key or _CELL_LINE.search(low):
        return "cell line", CONF.st_line_named if has_cell_line else CONF.st_line_cue
    if stem:
        return "cell line", CONF.st_stem_line  # ESC/iPSC lines
    if _ACTIVATED.search(low) and (has_cell_type or found_cell_type):
        return "in-vitro differentiated", CONF.st_differentiated
    if (_CULTURED.search(low) and (has_cell_type or found_cell_type or _PRIMARY_CELLS.search(low))
            or culture_cell_type and not _UNCULTURED.search(low)):
        return "cell line", CONF.st_cultured
    if has_cell_type or (_PRIMARY_CELLS.search(low) and not has_tissue) or (found_cell_type and _CELLS_WORD.search(low)):
        return "primary cells", CONF.st_primary_cells
    if has_tissue or _TISSUE.search(low):
        return "primary tissue", CONF.st_primary_tissue
    return None, 0.0


# ------------------------------------------------------------------------------------ SRA vocabulary
SRA_VOCAB: dict[str, tuple[str, ...]] = {
    "library_strategy": ("RNA-Seq", "miRNA-Seq", "ncRNA-Seq", "FL-cDNA", "EST", "Hi-C", "ATAC-seq", "WGS", "WXS",
                         "WGA", "Targeted-Capture", "AMPLICON", "CLONE", "ChIP-Seq", "MNase-Seq", "DNase-Hypersensitivity",
                         "Bisulfite-Seq", "MeDIP-Seq", "MBD-Seq", "Tn-Seq", "SELEX", "RIP-Seq", "ChIA-PET",
                         "ssRNA-seq", "Ribo-Seq", "RAD-Seq", "OTHER", "Synthetic-Long-Read", "snRNA-seq", "scRNA-seq"),
    "library_selection": ("RANDOM", "PCR", "RANDOM PCR", "RT-PCR", "HMPR", "MF", "repeat fractionation", "size fractionation",
                          "MSLL", "cDNA", "cDNA_randomPriming", "cDNA_oligo_dT", "PolyA", "Oligo-dT", "Inverse rRNA",
                          "Inverse rRNA selection", "ChIP", "ChIP-Seq", "MNase", "DNase", "Hybrid Selection",
                          "Reduced Representation", "Restriction Digest", "5-methylcytidine antibody", "MBD2 protein methyl-CpG binding domain",
                          "CAGE", "RACE", "MDA", "padlock probes capture method", "other", "unspecified"),
    "library_layout": ("SINGLE", "PAIRED"),
}


def sra_term(field: str, value: str) -> tuple[str, float] | None:
    """The SRA controlled-vocabulary spelling of ``value`` and a confidence (CONF.sra_*)."""
    v = value.strip()
    if not v or is_null(v):
        return None
    if field == "instrument":
        return v, CONF.sra_exact  # free-ish vocabulary (instrument_model); kept as submitted
    vocab = SRA_VOCAB.get(field, ())
    if v in vocab:
        return v, CONF.sra_exact
    for term in vocab:
        if norm(term) == norm(v):
            return term, CONF.sra_case
    if field == "library_layout":
        up = v.upper()
        if up.startswith("PAIRED"):
            return "PAIRED", CONF.sra_case
        if up.startswith("SINGLE"):
            return "SINGLE", CONF.sra_case
    return v, CONF.sra_unknown  # not in the vocabulary: kept, low confidence -> review
