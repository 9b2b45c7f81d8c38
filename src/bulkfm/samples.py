"""The sample sheet and how samples are grouped into batches for the per-sample work.

A row is one sample: an ``accession`` (any SRA/ENA/GEO accession) or local ``fastq_1``
[+ ``fastq_2``], with an optional ``sample`` name; any other column is kept as a sample
attribute (it feeds metadata harmonization). Run accessions and local files plan with no
network; study/experiment/sample/GEO accessions are expanded to runs by the ``sra_metadata``
checkpoint first.

Batches: per-sample work runs in jobs of ``batch_size`` samples, in sheet order, so that the
scheduler sees samples/batch_size jobs instead of one per sample, and so that appending samples
to a sheet changes only the last batch (earlier batches keep their members and stay complete).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bulkfm.sra.accessions import PATTERNS, AccessionError, classify

SAMPLE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
RESERVED = {"sample", "accession", "fastq_1", "fastq_2", "run"}


class SampleSheetError(ValueError):
    pass


@dataclass(frozen=True)
class Sample:
    sample: str
    run: str | None  # SRR/ERR/DRR when the reads come from SRA/ENA
    fastq_1: str | None
    fastq_2: str | None

    @property
    def fastqs(self) -> list[str]:
        return [f for f in (self.fastq_1, self.fastq_2) if f]


# Columns that may name the samples of a per-sample table, in the order of the rule below.
ID_COLUMNS = ("sample_id", "run", "sample")


def id_column(table: pd.DataFrame, known: Iterable[str] | None = None,
              where: str | os.PathLike[str] = "table") -> str:
    """The column that names the samples of a per-sample table: the one rule every stage uses.

    ``sample_id`` when present. Else ``run`` or ``sample``: given ``known`` IDs (the samples of
    the matrix being joined), the one that matches more of them;
    otherwise ``run`` first, because in SRA tables ``sample`` is the BioSample (SRS) accession
    while bulkfm names a sample by its run.
    """
    cols = [c for c in ID_COLUMNS if c in table.columns]
    if not cols:
        raise SampleSheetError(f"{where}: no sample ID column (one of {', '.join(ID_COLUMNS)}); "
                               "add a sample_id column")
    if cols[0] == "sample_id" or len(cols) == 1 or known is None:
        return cols[0]
    ids = set(map(str, known))
    hits = {c: int(table[c].astype(str).isin(ids).sum()) for c in cols}
    return max(cols, key=lambda c: (hits[c], c == cols[0]))


def read_sample_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """A per-sample table (labels, groups, metadata): Parquet, CSV (``.csv``/``.csv.gz``) or
    else TSV, read as text so that IDs keep their leading zeros."""
    path = Path(path)
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    sep = "," if path.name.lower().endswith((".csv", ".csv.gz")) else "\t"
    return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)


def sheet_accessions(df: pd.DataFrame) -> list[str]:
    """The accessions of a checked sheet (rows with reads from SRA/ENA, not local FASTQ)."""
    return [a for a, k in zip(df["accession"], df["kind"]) if k != "local"]


def read_sheet(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise SampleSheetError(f"sample sheet {path} does not exist (config key 'samples')")
    if path.suffix == ".parquet":
        return _runs_from_metadata(path)
    sep = "," if path.suffix == ".csv" else "\t"
    df = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, comment="#")
    df.columns = [c.strip() for c in df.columns]
    check_column_names(df.columns, path)
    for col in ("sample", "accession", "fastq_1", "fastq_2"):
        if col not in df.columns:
            df[col] = ""
        df[col] = df[col].str.strip()
    return df


SHEET_COLUMNS = ("sample", "accession", "fastq_1", "fastq_2")


def _column_key(name: str) -> str:
    return re.sub(r"[\s._-]+", "", name.lower())


def misspelt_columns(columns: list[str] | pd.Index) -> dict[str, str]:
    """Columns that are not sheet columns but look like one: {given: meant}.

    Any other column is a sample attribute, so a typo (``acession``, ``fastq1``, ``Sample``)
    would silently become an attribute and the row would lack its reads. Matched on the name
    without case and separators, else by difflib similarity >= 0.85 (``fastq_3`` vs ``fastq_1``
    is 0.83: not flagged).
    """
    keys = {_column_key(k): k for k in SHEET_COLUMNS}
    out: dict[str, str] = {}
    for col in columns:
        if col in SHEET_COLUMNS:
            continue
        key = _column_key(str(col))
        near = [keys[key]] if key in keys else difflib.get_close_matches(key, list(keys), n=1, cutoff=0.85)
        if near:
            out[str(col)] = keys.get(near[0], near[0])
    return out


def check_column_names(columns: list[str] | pd.Index, where: str | Path = "sample sheet") -> None:
    """Stop on a column that looks like a misspelt sheet column, naming it and the fix."""
    bad = misspelt_columns(columns)
    if bad:
        fixes = "; ".join(f"column {c!r} looks like {k!r}: rename it to {k!r}" for c, k in bad.items())
        raise SampleSheetError(
            f"{where}: {fixes} (the sheet columns are {', '.join(SHEET_COLUMNS)}; any other column "
            "is kept as a sample attribute)")


def _runs_from_metadata(path: Path) -> pd.DataFrame:
    """The resolved runs table (``sra/metadata.parquet``) as a sheet: one sample per kept run."""
    import pyarrow.parquet as pq

    cols = pq.read_schema(path).names
    table = pd.read_parquet(path, columns=[c for c in ("run", "excluded_reason") if c in cols])
    if "excluded_reason" in table.columns:
        table = table[table["excluded_reason"].isna() | (table["excluded_reason"] == "")]
    runs = table["run"].astype(str).to_numpy()
    return pd.DataFrame({"sample": runs, "accession": runs, "fastq_1": "", "fastq_2": ""})


def check_sheet(df: pd.DataFrame, where: str = "sample sheet") -> pd.DataFrame:
    """Validate rows (vectorised, so 500,000 rows take about a second) and fill ``sample``.

    Returns the sheet with a ``kind`` column (run, local, or the accession kind to resolve).
    """
    if len(df) == 0:
        raise SampleSheetError(f"{where}: no rows")
    has_acc = df["accession"] != ""
    has_fq = df["fastq_1"] != ""
    both = has_acc & has_fq
    neither = ~has_acc & ~has_fq
    for mask, msg in ((both, "has both accession and fastq_1: give one"),
                      (neither, "has neither accession nor fastq_1"),
                      ((df["fastq_2"] != "") & ~has_fq, "has fastq_2 without fastq_1")):
        if mask.any():
            row = int(mask.to_numpy().nonzero()[0][0])
            raise SampleSheetError(f"{where}: row {row + 2} {msg}")
    # Accessions are case-insensitive at NCBI/ENA; upper-case before validating (srr123 -> SRR123).
    df = df.assign(accession=df["accession"].str.upper())
    df = df.assign(kind=accession_kinds(df["accession"], has_acc, where))
    # Sample names: given, else the run accession, else the FASTQ file stem.
    name = df["sample"].where(df["sample"] != "", df["accession"].where(df["kind"] == "run", ""))
    stems = df["fastq_1"].map(lambda p: re.sub(r"(_R?1)?\.f(ast)?q(\.gz)?$", "", Path(p).name) if p else "")
    name = name.where(name != "", stems.where(df["kind"] == "local", ""))
    bad = (name != "") & ~name.str.fullmatch(SAMPLE_NAME.pattern)
    if bad.any():
        i = int(bad.to_numpy().nonzero()[0][0])
        raise SampleSheetError(f"{where}: row {i + 2}: sample name {name.iloc[i]!r} may contain only "
                               "letters, digits, '.', '_' and '-' (it becomes a directory name)")
    df = df.assign(sample=name)
    check_same_reads(df, where)  # first: "the same run twice" says more than "the same name twice"
    dup = name[(name != "") & name.duplicated()]
    if len(dup):
        raise SampleSheetError(f"{where}: sample {dup.iloc[0]!r} appears twice; names must be unique")
    return df


def accession_kinds(acc: pd.Series, has_acc: pd.Series, where: str) -> pd.Series:
    """The kind of every row ('local' without an accession), one vectorised regex per kind.

    Every row is checked (500,000 rows in about a second), with the same ASCII-only patterns
    that :func:`bulkfm.sra.accessions.classify` uses, so that what plans also runs.
    """
    kinds = pd.Series("local", index=acc.index, dtype=object)
    todo = acc[has_acc]
    for kind, pattern in PATTERNS.items():  # runs first: usually nothing is left after them
        if todo.empty:
            break
        hit = todo.str.fullmatch(pattern.pattern, flags=pattern.flags)
        kinds[hit[hit].index] = kind.value
        todo = todo[~hit]
    if not todo.empty:
        i = acc.index.get_loc(todo.index[0])
        try:
            classify(acc.iloc[i])
        except AccessionError as exc:
            raise SampleSheetError(f"{where}: row {i + 2}: {exc}") from None
        raise AssertionError(f"{acc.iloc[i]!r}: patterns disagree")  # classify uses the same ones
    return kinds


def check_same_reads(df: pd.DataFrame, where: str) -> None:
    """The same run, or the same FASTQ file, under two sample names would be quantified twice
    and counted as two samples: stop, naming both rows."""
    runs = df["accession"].where(df["kind"] == "run", "")
    files = pd.concat([df["fastq_1"], df["fastq_2"]], ignore_index=True)
    odd = files.str.contains(r"//|(?:^|/)\.\.?(?:/|$)", regex=True)  # a/./b, a//b, ./a: normalise
    files[odd] = files[odd].map(os.path.normpath)
    for values, what in ((runs.reset_index(drop=True), "run"), (files, "FASTQ file")):
        dup = (values != "") & values.duplicated(keep=False)
        if dup.any():
            rows = dup.to_numpy().nonzero()[0] % len(df)
            first = values[dup].iloc[0]
            a, b = sorted(int(r) for r in rows[(values[dup] == first).to_numpy()][:2])
            raise SampleSheetError(
                f"{where}: rows {a + 2} and {b + 2} (samples {df['sample'].iloc[a]!r} and "
                f"{df['sample'].iloc[b]!r}) name the same {what} {first!r}: it would be quantified twice "
                "and counted as two samples; keep one row")


def needs_resolution(df: pd.DataFrame) -> bool:
    """True when some rows are studies/experiments/GEO accessions that must be expanded to runs."""
    return bool((~df["kind"].isin(["run", "local"])).any())


def samples_from_sheet(df: pd.DataFrame) -> list[Sample]:
    if needs_resolution(df):
        raise SampleSheetError("sheet has non-run accessions: resolve them to runs first")
    return [Sample(s, a or None, f1 or None, f2 or None)
            for s, a, f1, f2 in zip(df["sample"], df["accession"], df["fastq_1"], df["fastq_2"])]


def batch_ids(n_samples: int, batch_size: int) -> list[str]:
    return [f"b{i:05d}" for i in range((n_samples + batch_size - 1) // batch_size)]


def batch_members(samples: list[Sample], batch: str, batch_size: int) -> list[Sample]:
    i = int(batch.removeprefix("b"))
    members = samples[i * batch_size : (i + 1) * batch_size]
    if not members:
        raise SampleSheetError(f"batch {batch} is empty for {len(samples)} samples")
    return members


def batch_signature(members: list[Sample]) -> str:
    """A short hash of a batch's membership: a Snakemake param, so changing it reruns the batch."""
    h = hashlib.sha1()
    for s in members:
        h.update(f"{s.sample}\t{s.run}\t{s.fastq_1}\t{s.fastq_2}\n".encode())
    return h.hexdigest()[:16]


def local_metadata(df: pd.DataFrame) -> pd.DataFrame:
    """``sra/metadata.parquet`` rows for local-FASTQ samples.

    They have no SRA record: the sheet's extra columns are their attributes (JSON, as BioSample
    attributes are), and columns named like run-table fields (study, library_layout, ...) fill
    those fields too.
    """
    from bulkfm.sra.resolve import COLUMNS

    local = df[df["kind"] == "local"]
    extra = [c for c in local.columns if c not in RESERVED | {"kind"}]
    out = pd.DataFrame({c: pd.Series([None] * len(local), dtype=object) for c in COLUMNS})
    out["run"] = local["sample"].to_numpy()
    out["sample"] = local["sample"].to_numpy()
    out["input_accession"] = local["fastq_1"].to_numpy()
    out["library_layout"] = ["PAIRED" if f else "SINGLE" for f in local["fastq_2"]]
    out["source"] = "sample_sheet"
    for col in extra:
        if col in COLUMNS and col not in ("run", "sample"):
            out[col] = local[col].replace("", None).to_numpy()
    out["attributes"] = [json.dumps({k: v for k, v in zip(extra, row) if v != ""})
                         for row in local[extra].itertuples(index=False)]
    return out
