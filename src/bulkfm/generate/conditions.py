"""Metadata -> condition codes: one vocabulary per field, "unknown" a value of its own.

The metadata table T is either the harmonized Parquet (long: one row per sample x field with
``value`` and ``ontology_id``) or a TSV/CSV with ``sample_id``, one column per field and an
optional ``study``. A field's value is its ontology ID where there is one, else its text;
labels seen beside an ID are remembered so that a query may give either ("liver" or
UBERON:0002107). Numeric fields (age, dose, time) are standardized numbers with a known flag.

Fields fall into three groups, the latent parts of the generator: biological, perturbation,
technical (library fields, instrument and ``study`` as the batch).
"""

from __future__ import annotations

import difflib
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bulkfm.metadata.schema import FIELDS
from bulkfm.samples import ID_COLUMNS, id_column

log = logging.getLogger(__name__)

UNKNOWN = "unknown"
STUDY = "study"
GROUPS: dict[str, tuple[str, ...]] = {
    "bio": ("age_years", "development_stage", "sex", "tissue", "cell_type", "cell_line",
            "disease", "sample_type"),
    "pert": ("perturbation_identity", "perturbation_type", "dose", "time"),
    "tech": ("library_selection", "library_layout", "library_strategy", "instrument", STUDY),
}
NUMERIC: frozenset[str] = frozenset({"age_years", "dose", "time"})
KNOWN_FIELDS: tuple[str, ...] = (*FIELDS, STUDY)
# Columns a metadata TSV may carry that are not conditions (hold-out groups, free text).
PASSIVE_COLUMNS = frozenset({"group", "participant", "bioproject", "label", "title",
                             "description"})
_BLANK = {"", "nan", "none", "<na>", "na", "null", UNKNOWN}


class ConditionError(ValueError):
    """Bad metadata or query: the message names the row/sample and the fix."""


def group_of(name: str) -> str:
    for g, names in GROUPS.items():
        if name in names:
            return g
    raise KeyError(name)


def _blank(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or str(v).strip().lower() in _BLANK


def ontology_neighbours(value: str, known: list[str], labels: dict[str, str], n: int = 5
                        ) -> list[tuple[str, int]]:
    """Known values nearest to ``value`` in its ontology (an ID, or a label the ontology
    knows): (known ID, path length through the closest common ancestor), closest first.
    Uses the snapshots that ``cellxgene-ontology-guide`` ships (as bulkfm.metadata does);
    empty when the value is not an ontology term or the package is missing."""
    try:
        from cellxgene_ontology_guide.ontology_parser import OntologyParser
    except ImportError:
        return []
    parser = OntologyParser()
    prefixes = sorted({k.split(":", 1)[0] for k in known if ":" in k})
    term = None
    try:
        if ":" in value and parser.is_valid_term_id(value):
            term = value
        else:
            for prefix in prefixes:
                term = parser.get_term_id_by_label(value, prefix)
                if term is None and value.lower() != value:
                    term = parser.get_term_id_by_label(value.lower(), prefix)
                if term:
                    break
    except (KeyError, ValueError):  # an ontology the snapshots do not ship
        term = None
    if term is None:
        return []
    prefix = term.split(":", 1)[0]
    out = []
    for k in known:
        if not k.startswith(prefix + ":"):
            continue
        try:
            d = parser.get_distance_between_terms(term, k)
        except (KeyError, ValueError):  # obsolete or foreign ID in the vocabulary
            continue
        if d >= 0:
            out.append((k, int(d)))
    return sorted(out, key=lambda kd: (kd[1], kd[0]))[:n]


def nearest(value: str, known: list[str], labels: dict[str, str], n: int = 5) -> list[str]:
    """Nearest known values: ontology neighbours first (fewest steps through a common
    ancestor), then by name (IDs and their labels)."""
    def shown(k: str, steps: int | None = None) -> str:
        lab = f"{labels[k]}, " if k in labels and labels[k] != k else ""
        if steps is not None:
            return f"{k} ({lab}{steps} ontology step{'s' if steps != 1 else ''})"
        return f"{k} ({lab[:-2]})" if lab else k

    out = [shown(k, d) for k, d in ontology_neighbours(value, known, labels, n)]
    taken = {o.split(" ", 1)[0] for o in out}
    names = {k: k for k in known}
    names.update({lab.lower(): k for k, lab in labels.items() if k in known})
    hits = difflib.get_close_matches(value.lower(), list(names), n=n * 2, cutoff=0.0)
    if ":" in value:  # same ontology first (UBERON:... -> UBERON terms)
        prefix = value.split(":", 1)[0].upper()
        hits.sort(key=lambda h: not names[h].upper().startswith(prefix + ":"))
    for h in hits:
        k = names[h]
        if k not in taken:
            taken.add(k)
            out.append(shown(k))
    return out[:n]


def _check_field_names(columns: list[str], where: str) -> None:
    unknown = [c for c in columns if c not in KNOWN_FIELDS]
    if unknown:
        hints = "; ".join(f"{c!r}: did you mean {difflib.get_close_matches(c, KNOWN_FIELDS, 3)}"
                          for c in unknown)
        raise ConditionError(f"{where}: unknown field name(s) {unknown} ({hints}). Known fields: "
                             f"{', '.join(KNOWN_FIELDS)}; rename the column or drop it")


def read_metadata(path: str | os.PathLike[str]) -> tuple[pd.DataFrame, dict[str, dict[str, str]]]:
    """-> (table indexed by sample_id: one str column per field, "unknown" where empty;
    labels {field: {id: label}}). Extra columns ``group``/``participant`` are kept as is."""
    path = Path(path)
    if not path.is_file():
        raise ConditionError(f"{path}: metadata table not found")
    labels: dict[str, dict[str, str]] = {}
    if path.suffix == ".parquet":
        raw = pd.read_parquet(path)
        if {"sample_id", "field", "value"} <= set(raw.columns):
            return _from_long(raw, path, labels)
    else:
        raw = pd.read_csv(path, sep="\t" if path.suffix in (".tsv", ".txt", ".gz") else ",",
                          dtype=str, keep_default_na=False)
    if not set(ID_COLUMNS) & set(raw.columns):
        raise ConditionError(f"{path}: no sample_id column; the metadata table needs sample_id "
                             "and one column per field (e.g. disease, sex, study)")
    id_col = id_column(raw, where=path)
    raw = raw.rename(columns={id_col: "sample_id"})
    passive = [c for c in raw.columns if c in PASSIVE_COLUMNS]
    cols = [c for c in raw.columns if c != "sample_id" and c not in passive
            and not c.endswith("_id")]
    _check_field_names(cols, str(path))
    if not cols:
        raise ConditionError(f"{path}: no field columns; add one column per field "
                             f"({', '.join(KNOWN_FIELDS[:6])}, ...)")
    table = raw[["sample_id", *cols, *passive]].copy()
    for c in cols:  # a `<field>_id` column beside a label column: the ID wins, label kept
        if f"{c}_id" in raw.columns:
            ids = raw[f"{c}_id"].astype(str)
            has = ~ids.map(_blank)
            for i, lab in zip(ids[has], raw.loc[has, c].astype(str), strict=True):
                labels.setdefault(c, {})[i] = lab
            table.loc[has, c] = ids[has]
    return _finish(table, path), labels


def _from_long(raw: pd.DataFrame, path: Path, labels: dict[str, dict[str, str]]
               ) -> tuple[pd.DataFrame, dict[str, dict[str, str]]]:
    _check_field_names(sorted(set(raw["field"].astype(str))), str(path))
    oid = raw["ontology_id"] if "ontology_id" in raw.columns else pd.Series(None, index=raw.index)
    val = raw["value"].astype(object)
    code = [o if not _blank(o) else (v if not _blank(v) else UNKNOWN)
            for o, v in zip(oid.astype(object), val, strict=True)]
    for f, o, v in zip(raw["field"], oid.astype(object), val, strict=True):
        if not _blank(o) and not _blank(v):
            labels.setdefault(str(f), {})[str(o)] = str(v)
    long = pd.DataFrame({"sample_id": raw["sample_id"].astype(str), "field": raw["field"],
                         "code": code})
    dup = long.duplicated(["sample_id", "field"])
    if dup.any():
        r = long[dup].iloc[0]
        raise ConditionError(f"{path}: sample {r.sample_id!r} has field {r.field!r} twice; one "
                             "row per sample and field")
    table = long.pivot(index="sample_id", columns="field", values="code").reset_index()
    table.columns.name = None
    return _finish(table, path), labels


def _finish(table: pd.DataFrame, path: Path) -> pd.DataFrame:
    table["sample_id"] = table["sample_id"].astype(str)
    dup = table["sample_id"].duplicated()
    if dup.any():
        raise ConditionError(f"{path}: sample {table['sample_id'][dup].iloc[0]!r} appears twice; "
                             "give one row per sample")
    for c in table.columns:
        if c in KNOWN_FIELDS:
            table[c] = [UNKNOWN if _blank(v) else str(v).strip() for v in table[c]]
    return table.set_index("sample_id")


def attach_study(table: pd.DataFrame, matrix: object) -> pd.DataFrame:
    """No ``study`` column in T: take the study/BioProject of the matrix store's sample table
    (the workflow merges SRA metadata there), so that whole studies can be held out."""
    if STUDY in table.columns:
        return table
    samples = getattr(matrix, "sample_table", None)
    if samples is None:
        return table
    col = next((c for c in ("bioproject", "study") if c in samples.columns
                and samples[c].notna().any()), None)
    if col is None:
        return table
    study = dict(zip(samples["sample_id"].astype(str), samples[col], strict=True))
    table = table.copy()
    table[STUDY] = [UNKNOWN if _blank(study.get(s)) else str(study[s]) for s in table.index]
    log.info("study of each sample from the matrix's sample table (%s)", col)
    return table


def check_samples(table: pd.DataFrame, matrix_samples: list[str], where: str) -> None:
    """Every metadata row must name a matrix sample (listed, never dropped silently)."""
    known = set(matrix_samples)
    missing = [s for s in table.index if s not in known]
    if missing:
        rows = [f"{s} (row {table.index.get_loc(s) + 2})" for s in missing[:10]]
        raise ConditionError(
            f"{where}: {len(missing)} metadata sample(s) are not in the matrix: "
            f"{', '.join(rows)}{' ...' if len(missing) > 10 else ''}; remove those rows or use "
            "the matrix they belong to")


@dataclass
class Vocabulary:
    """Per-field codes. Categorical: index 0 = "unknown", then the seen values (sorted).
    Numeric: mean/std of the seen values (code = standardized value, known flag)."""

    fields: list[str]
    values: dict[str, list[str]] = field(default_factory=dict)  # categorical, without unknown
    numeric: dict[str, tuple[float, float]] = field(default_factory=dict)  # mean, std
    labels: dict[str, dict[str, str]] = field(default_factory=dict)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)

    @classmethod
    def fit(cls, table: pd.DataFrame, labels: dict[str, dict[str, str]]) -> Vocabulary:
        fields = [f for f in KNOWN_FIELDS if f in table.columns]
        vocab = cls(fields=fields, labels={f: labels.get(f, {}) for f in fields})
        for f in fields:
            col = table[f]
            if f in NUMERIC:
                nums = _numbers(col, f)
                ok = nums[~np.isnan(nums)]
                mu = float(ok.mean()) if len(ok) else 0.0
                sd = float(ok.std()) if len(ok) > 1 and ok.std() > 0 else 1.0
                vocab.numeric[f] = (mu, sd)
            else:
                seen = col[col != UNKNOWN]
                vocab.values[f] = sorted(set(seen))
                vocab.counts[f] = {str(k): int(v) for k, v in seen.value_counts().items()}
        return vocab

    def group_fields(self, group: str) -> list[str]:
        return [f for f in self.fields if f in GROUPS[group]]

    def size(self, f: str) -> int:
        return len(self.values[f]) + 1

    def resolve(self, f: str, value: str, where: str) -> str:
        """A query value -> the known code (ID, label or case-insensitive match); else error
        with the nearest known values."""
        if _blank(value):
            return UNKNOWN
        value = str(value).strip()
        if f in NUMERIC:
            try:
                float(value)
            except ValueError:
                raise ConditionError(f"{where}: field {f!r} value {value!r} is not a number; "
                                     f"give {f} as a number (or leave it empty for unknown)"
                                     ) from None
            return value
        known = self.values[f]
        if value in known:
            return value
        low = value.lower()
        for k in known:
            if k.lower() == low or self.labels.get(f, {}).get(k, "").lower() == low:
                return k
        near = nearest(value, known, self.labels.get(f, {}))
        raise ConditionError(f"{where}: field {f!r} value {value!r} was never seen in training; "
                             f"nearest known values: {', '.join(near) or '(none)'}. Use one of "
                             "them, or leave the cell empty for unknown")

    def encode(self, table: pd.DataFrame) -> dict[str, np.ndarray]:
        """Resolved table (codes) -> {field: int64 [N]} categorical, {field: float32 [N, 2]}
        numeric (standardized value, known flag). Missing columns are unknown."""
        out: dict[str, np.ndarray] = {}
        n = len(table)
        for f in self.fields:
            col = table[f] if f in table.columns else pd.Series([UNKNOWN] * n, index=table.index)
            if f in NUMERIC:
                nums = _numbers(col, f)
                mu, sd = self.numeric[f]
                known = ~np.isnan(nums)
                out[f] = np.stack([np.where(known, (nums - mu) / sd, 0.0), known], 1
                                  ).astype(np.float32)
            else:
                index = {v: i + 1 for i, v in enumerate(self.values[f])}
                out[f] = np.array([index.get(v, 0) for v in col], dtype=np.int64)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"fields": self.fields, "values": self.values,
                "numeric": {k: list(v) for k, v in self.numeric.items()},
                "labels": self.labels, "counts": self.counts}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Vocabulary:
        return cls(fields=list(d["fields"]), values={k: list(v) for k, v in d["values"].items()},
                   numeric={k: (float(v[0]), float(v[1])) for k, v in d["numeric"].items()},
                   labels=d.get("labels", {}), counts=d.get("counts", {}))


def _numbers(col: pd.Series, f: str) -> np.ndarray:
    out = np.full(len(col), np.nan)
    for i, (sid, v) in enumerate(col.items()):
        if _blank(v):
            continue
        try:
            out[i] = float(v)
        except ValueError:
            raise ConditionError(f"sample/row {sid!r}: field {f!r} value {v!r} is not a number; "
                                 f"give {f} as a number (years, µM, hours) or leave it empty"
                                 ) from None
    return out


def condition_fields(vocab: Vocabulary) -> list[str]:
    """Fields that define an evaluated condition: biological and perturbation fields that vary."""
    return [f for f in vocab.fields if group_of(f) in ("bio", "pert") and f not in NUMERIC
            and len(vocab.values.get(f, [])) > 1]


def condition_key(row: pd.Series | dict, fields: list[str]) -> str:
    return " | ".join(f"{f}={row[f]}" for f in fields)
