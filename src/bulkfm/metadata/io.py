"""Reading sample-attribute tables and writing the harmonized outputs.

Input (the stable contract): JSONL, Parquet or TSV with ``sample_id`` and either ``attributes``
(an object of raw key -> value, or its JSON text) or ``text`` (free text). The SRA stage's
``sra/metadata.parquet`` is accepted as is: ``run`` is the sample id when ``sample_id`` is absent,
and its library_* / instrument / title / description columns are used as SRA fields.

Nothing is accepted silently: a repeated ``sample_id``, a ``sample_id`` that is not a string or
number, ``attributes`` that are not key -> value, and bytes that are not UTF-8 each stop the
read with an :class:`InputError` naming the file, the line/row and the fix.
"""

from __future__ import annotations

import gzip
import json
import math
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from bulkfm.common.atomic import atomic_path
from bulkfm.metadata.records import RawRecord
from bulkfm.metadata.steps import TECHNICAL
from bulkfm.metadata.schema import COLUMNS, FIELDS, FieldValue

SRA_COLUMNS = (*TECHNICAL, "instrument_model", "title", "description", "organism", "library_source", "study", "bioproject")


class InputError(ValueError):
    """Bad input table: the message names the file, the row/sample and the fix."""


def _clean(v) -> str | None:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    s = str(v)
    return s if s.strip() else None


def _attributes(raw, where: str) -> dict[str, str]:
    if raw is None or (isinstance(raw, float) and math.isnan(raw)):
        return {}
    if isinstance(raw, dict):
        obj = raw
    elif isinstance(raw, (str, bytes)):
        if not str(raw).strip():
            return {}
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise InputError(f"{where}: 'attributes' is not valid JSON ({exc.msg}); "
                             "write an object of raw key -> value, e.g. {\"tissue\": \"lung\"}") from None
    elif isinstance(raw, list):  # [[key, value], ...] or [{'key':..,'value':..}]
        obj = {}
        for i, item in enumerate(raw):
            if isinstance(item, dict) and "key" in item:
                obj[item["key"]] = item.get("value")
            elif isinstance(item, (list, tuple)) and len(item) == 2:
                obj[item[0]] = item[1]
            else:  # a bare list of values has no keys: nothing says which is the tissue
                raise InputError(f"{where}: 'attributes' item {i} is {str(item)[:60]!r}, not a [key, value] "
                                 "pair or {\"key\": ..., \"value\": ...}; write attributes as an object "
                                 "of raw key -> value, e.g. {\"tissue\": \"lung\"}")
    else:
        raise InputError(f"{where}: 'attributes' must be an object of raw key -> value, got {type(raw).__name__}")
    if not isinstance(obj, dict):
        raise InputError(f"{where}: 'attributes' must be an object of raw key -> value, got {type(obj).__name__}")
    out = {}
    for k, v in obj.items():
        if isinstance(v, (list, tuple)):
            v = "; ".join(str(x) for x in v)
        v = _clean(v)
        if v is not None:
            out[str(k)] = v
    return out


def _sample_id(row: dict, where: str) -> str | None:
    for key in ("sample_id", "run"):
        v = row.get(key)
        if isinstance(v, bytes):
            v = _utf8(v, where)
        if isinstance(v, float) and math.isnan(v):
            v = None
        if isinstance(v, bool) or (v is not None and not isinstance(v, (str, int))):
            raise InputError(f"{where}: '{key}' must be a string, got {type(v).__name__} {str(v)[:60]!r}; "
                             "give one id per row")
        v = _clean(v)
        if v is not None:
            return v
    return None


def _utf8(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{where}: byte 0x{raw[exc.start]:02x} at offset {exc.start} is not UTF-8; "
                         "re-encode the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)") from None


def _from_mapping(row: dict, where: str) -> RawRecord:
    sid = _sample_id(row, where)
    if sid is None:
        raise InputError(f"{where}: no sample_id (or run) value; every row needs one")
    if "attributes" not in row and "text" not in row:
        raise InputError(f"{where}: needs an 'attributes' or a 'text' column/key (sample {sid})")
    raw = row.get("attributes")
    attrs = _attributes(_utf8(raw, where) if isinstance(raw, bytes) else raw, f"{where} (sample {sid})")
    text = _clean(row.get("text")) or ""
    sra = {c: str(row[c]) for c in SRA_COLUMNS if _clean(row.get(c)) is not None}
    return RawRecord(sample_id=sid, attributes=attrs, text=text, sra=sra)


def read_records(path: str | os.PathLike[str]) -> Iterator[RawRecord]:
    """Stream RawRecords from JSONL(.gz), Parquet or TSV/CSV; a sample id seen twice is an error."""
    seen: dict[str, str] = {}  # sample id -> where it was first seen
    for rec, where in _read_records(Path(path)):
        first = seen.setdefault(rec.sample_id, where)
        if first is not where:
            raise InputError(f"{where}: sample_id {rec.sample_id!r} appears again (first at {first}); "
                             "ids must be unique: merge the rows' attributes into one, or rename one")
        yield rec


def _read_records(path: Path) -> Iterator[tuple[RawRecord, str]]:
    if not path.is_file():
        raise InputError(f"input not found: {path}")
    name = path.name.lower()
    if name.endswith((".jsonl", ".jsonl.gz", ".ndjson", ".json")):
        opener = gzip.open if name.endswith(".gz") else open
        with opener(path, "rb") as fh:
            for n, raw_line in enumerate(fh, 1):
                line = _utf8(raw_line, f"{path}:{n}")
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputError(f"{path}:{n}: not valid JSON ({exc.msg}); one object per line") from None
                if not isinstance(row, dict):
                    raise InputError(f"{path}:{n}: each line must be a JSON object")
                where = f"{path}:{n}"
                yield _from_mapping(row, where), where
        return
    if name.endswith(".parquet"):
        pf = pq.ParquetFile(path)
        cols = set(pf.schema_arrow.names)
        _check_columns(cols, path)
        n = 0
        for batch in pf.iter_batches(batch_size=10000):
            for row in batch.to_pylist():
                n += 1
                where = f"{path} row {n}"
                yield _from_mapping(row, where), where
        return
    if name.endswith((".tsv", ".tsv.gz", ".txt", ".csv", ".csv.gz")):
        sep = "," if ".csv" in name else "\t"
        n = 0
        try:
            for chunk in pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, chunksize=10000,
                                     encoding="utf-8"):
                _check_columns(set(chunk.columns), path)
                for row in chunk.to_dict("records"):
                    n += 1
                    where = f"{path}:{n + 1} (row {n})"
                    yield _from_mapping(row, where), where
        except UnicodeDecodeError:
            _raise_first_non_utf8_line(path)
            raise
        return
    raise InputError(f"{path}: unknown input format; use .jsonl, .parquet or .tsv")


def _raise_first_non_utf8_line(path: Path) -> None:
    """Find the line pandas could not decode (it reports only a byte offset in a buffer)."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as fh:
        for n, raw_line in enumerate(fh, 1):
            _utf8(raw_line, f"{path}:{n}")


def _check_columns(cols: set[str], path: Path) -> None:
    if not ({"sample_id", "run"} & cols):
        raise InputError(f"{path}: needs a 'sample_id' (or SRA 'run') column; has {sorted(cols)[:12]}")
    if not ({"attributes", "text"} & cols):
        raise InputError(f"{path}: needs an 'attributes' (JSON object per row) or 'text' column; has {sorted(cols)[:12]}")


# ---------------------------------------------------------------------------------- outputs
LONG_SCHEMA = pa.schema([
    ("sample_id", pa.string()), ("field", pa.string()), ("value", pa.string()), ("ontology_id", pa.string()),
    ("source", pa.string()), ("method", pa.string()), ("confidence", pa.float32()),
])


def _long_rows(sample_id: str, fields: dict[str, FieldValue]) -> Iterator[tuple]:
    for f in FIELDS:
        fv = fields.get(f) or FieldValue()
        yield (sample_id, f, fv.value, fv.ontology_id, fv.source, fv.method, float(fv.confidence))


def write_outputs(results: Iterable[tuple[RawRecord, dict[str, FieldValue]]], out: str | os.PathLike[str],
                  wide_tsv: str | os.PathLike[str] | None = None, batch: int = 20000) -> int:
    """Stream the long Parquet (and the wide TSV) in batches of samples; atomic. Returns samples."""
    out = Path(out)
    n = 0
    with atomic_path(out, suffix=".parquet") as tmp, _maybe_atomic(wide_tsv) as tsv_tmp:
        writer = pq.ParquetWriter(tmp, LONG_SCHEMA, compression="zstd")
        tsv = open(tsv_tmp, "w", encoding="utf-8") if tsv_tmp else None
        if tsv:
            header = ["sample_id"] + [f"{f}{s}" for f in FIELDS for s in ("", "_id", "_method", "_confidence")]
            tsv.write("\t".join(header) + "\n")
        rows: list[tuple] = []
        try:
            for rec, fields in results:
                n += 1
                rows.extend(_long_rows(rec.sample_id, fields))
                if tsv:
                    tsv.write("\t".join(_wide_cells(rec.sample_id, fields)) + "\n")
                if len(rows) >= batch * len(FIELDS):
                    writer.write_table(pa.Table.from_pylist([dict(zip(COLUMNS, r)) for r in rows], LONG_SCHEMA))
                    rows = []
            if rows or n == 0:
                writer.write_table(pa.Table.from_pylist([dict(zip(COLUMNS, r)) for r in rows], LONG_SCHEMA))
        finally:
            writer.close()
            if tsv:
                tsv.close()
    return n


def _tsv_cell(v) -> str:
    if v is None:
        return ""
    return str(v).replace("\t", " ").replace("\n", " ").replace("\r", " ")


def _wide_cells(sample_id: str, fields: dict[str, FieldValue]) -> list[str]:
    cells = [_tsv_cell(sample_id)]
    for f in FIELDS:
        fv = fields.get(f) or FieldValue()
        cells += [_tsv_cell(fv.value), _tsv_cell(fv.ontology_id), _tsv_cell(fv.method),
                  f"{fv.confidence:.3f}" if fv.method else ""]
    return cells


class _maybe_atomic:
    def __init__(self, target) -> None:
        self.target = target
        self.cm = atomic_path(target) if target else None

    def __enter__(self):
        return self.cm.__enter__() if self.cm else None

    def __exit__(self, *exc):
        return self.cm.__exit__(*exc) if self.cm else False


def read_harmonized(path: str | os.PathLike[str]) -> pd.DataFrame:
    return pd.read_parquet(path)


def wide(df: pd.DataFrame) -> pd.DataFrame:
    """Long harmonized table -> one row per sample: <field> (value) and <field>_id columns."""
    v = df.pivot(index="sample_id", columns="field", values="value")
    i = df.pivot(index="sample_id", columns="field", values="ontology_id").add_suffix("_id")
    return pd.concat([v, i], axis=1)
