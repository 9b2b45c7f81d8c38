"""Experiments as queries: generate profiles for metadata rows, and counterfactuals.

Output Parquet, one row per profile: ``profile_id``, ``query_row`` (or ``sample_id``),
``seen_combination``, the resolved field codes, then one float32 column per model gene
(log1p). Written in chunks (pyarrow ParquetWriter, atomic rename), so memory is
O(batch x genes) whatever N.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from bulkfm.common.atomic import atomic_path
from bulkfm.generate.conditions import (KNOWN_FIELDS, UNKNOWN, ConditionError, _blank,
                                        _check_field_names, group_of, read_metadata)
from bulkfm.generate.model import PARTS, Generator
from bulkfm.matrix.store import iter_row_batches, open_matrix
from bulkfm.train.data import SubsetMatrix, align_genes

log = logging.getLogger(__name__)
MAX_N = 1_000_000  # profiles per query row; more is almost surely a typo
MAX_TOTAL = 20_000_000


def read_query(path: str | os.PathLike[str], model: Generator) -> pd.DataFrame:
    """Query TSV/CSV -> resolved table (one row per experiment, every model field)."""
    path = Path(path)
    if not path.is_file():
        raise ConditionError(f"{path}: query file not found")
    raw = pd.read_csv(path, sep="\t" if path.suffix != ".csv" else ",", dtype=str,
                      keep_default_na=False)
    return resolve_query(raw, model, str(path))


def resolve_query(raw: pd.DataFrame, model: Generator, where: str) -> pd.DataFrame:
    vocab = model.vocab
    cols = [c for c in raw.columns if c not in ("query_id", "sample_id")]
    _check_field_names(cols, where)
    untrained = [c for c in cols if c not in vocab.fields]
    if untrained:
        raise ConditionError(f"{where}: field(s) {untrained} were not in the training metadata; "
                             f"this model knows {', '.join(vocab.fields)}. Drop those columns")
    if len(raw) == 0:
        raise ConditionError(f"{where}: no query rows; give one row per experiment")
    out = pd.DataFrame(UNKNOWN, index=range(len(raw)), columns=vocab.fields)
    for i, row in raw.reset_index(drop=True).iterrows():
        line = f"{where} row {i + 2}"  # +1 header, +1 one-based
        if all(_blank(row[c]) for c in cols):
            raise ConditionError(f"{line}: no field set; give at least one of "
                                 f"{', '.join(vocab.fields)}")
        for c in cols:
            out.loc[i, c] = vocab.resolve(c, row[c], line)
    return out


def parse_set(spec: str, model: Generator) -> dict[str, str]:
    """"sex=male,disease=MONDO:0004992" -> {field: code}, validated against the vocabulary."""
    pairs: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        if "=" not in part:
            raise ConditionError(f"--set {spec!r}: {part!r} is not field=value; write e.g. "
                                 "--set sex=male,library_layout=SINGLE")
        f, v = (s.strip() for s in part.split("=", 1))
        _check_field_names([f], "--set")
        if f not in model.vocab.fields:
            raise ConditionError(f"--set: field {f!r} was not in the training metadata; this "
                                 f"model knows {', '.join(model.vocab.fields)}")
        pairs[f] = model.vocab.resolve(f, v, f"--set {f}")
    if not pairs:
        raise ConditionError("--set is empty; give field=value[,field=value]")
    return pairs


def check_n(n: int, rows: int) -> None:
    if n <= 0:
        raise ConditionError(f"--n {n}: give a positive number of profiles per query row")
    if n > MAX_N or n * rows > MAX_TOTAL:
        raise ConditionError(f"--n {n} x {rows} rows = {n * rows:,} profiles is too many (limit "
                             f"{MAX_N:,} per row, {MAX_TOTAL:,} in all); split the query")


def _codes(model: Generator, table: pd.DataFrame) -> dict[str, torch.Tensor]:
    return {f: torch.from_numpy(v) for f, v in model.vocab.encode(table).items()}


class _Writer:
    """Chunked Parquet rows: leading string/bool columns, then one float32 column per gene."""

    def __init__(self, path: Path, genes: list[str], lead: dict[str, pa.DataType]) -> None:
        self.genes = genes
        self.schema = pa.schema([pa.field(k, t) for k, t in lead.items()]
                                + [pa.field(g, pa.float32()) for g in genes])
        self._ctx = atomic_path(path, suffix=".parquet")
        self._tmp = self._ctx.__enter__()
        self._w = pq.ParquetWriter(self._tmp, self.schema)

    def write(self, lead: dict[str, list], values: np.ndarray) -> None:
        arrays = [pa.array(v, type=self.schema.field(k).type) for k, v in lead.items()]
        arrays += [pa.array(values[:, j]) for j in range(values.shape[1])]
        self._w.write_table(pa.Table.from_arrays(arrays, schema=self.schema))

    def close(self, ok: bool) -> None:
        self._w.close()
        if ok:
            self._ctx.__exit__(None, None, None)
        else:
            self._ctx.__exit__(RuntimeError, RuntimeError("aborted"), None)


def generate(model: Generator, query: pd.DataFrame, n: int, out: str | os.PathLike[str], *,
             seed: int = 0, batch: int = 2048) -> pd.DataFrame:
    """n profiles per resolved query row -> OUT.parquet; returns the per-row summary."""
    check_n(n, len(query))
    codes = _codes(model, query)
    seen = [model.is_seen(codes, i) for i in range(len(query))]
    for i, s in enumerate(seen):
        if not s:
            log.warning("query row %d (%s): this combination was never seen in training; "
                        "generated from the learned prior (flagged seen_combination=false)",
                        i + 2, _describe(query.iloc[i]))
    lead = {"profile_id": pa.string(), "query_row": pa.int64(),
            "seen_combination": pa.bool_(), **{f: pa.string() for f in query.columns}}
    w = _Writer(Path(out), list(model.genes), lead)
    ok = False
    try:
        gen = torch.Generator().manual_seed(seed)
        for i in range(len(query)):
            for start in range(0, n, batch):
                m = min(batch, n - start)
                c = {f: v[i:i + 1].expand(m, *v.shape[1:]).contiguous() for f, v in codes.items()}
                x = model.sample(c, gen).numpy()
                w.write({"profile_id": [f"q{i}_{start + j}" for j in range(m)],
                         "query_row": [i] * m, "seen_combination": [seen[i]] * m,
                         **{f: [str(query.iloc[i][f])] * m for f in query.columns}}, x)
        ok = True
    finally:
        w.close(ok)
    return pd.DataFrame({"query_row": range(len(query)), "seen_combination": seen})


def _describe(row: pd.Series) -> str:
    return ", ".join(f"{k}={v}" for k, v in row.items() if v != UNKNOWN)


def model_view(model: Generator, matrix_path: str | os.PathLike[str]) -> SubsetMatrix:
    """The matrix's columns in the model's gene order; a matrix lacking model genes is an error
    naming the genes (align_genes)."""
    matrix = open_matrix(matrix_path)
    index = align_genes(list(model.genes), matrix)
    return SubsetMatrix(matrix, index, list(model.genes))


def infer_conditions(model: Generator, z: dict[str, torch.Tensor], groups: set[str]
                     ) -> dict[str, np.ndarray]:
    """Most likely seen condition of each group from its latent (no metadata given):
    argmax over the aggregate priors -> {group: index into agg_keys [B]}."""
    return {g: model.log_density(z[g], g).argmax(1).numpy() for g in groups
            if model.agg_keys[g]}


def _codes_from_keys(model: Generator, g: str, keys: list[str]) -> pd.DataFrame:
    rows = []
    for key in keys:
        row = {}
        for part in key.split("|"):
            if "=" not in part:
                continue
            f, c = part.split("=", 1)
            if f in model.vocab.values:
                row[f] = UNKNOWN if c == "0" else model.vocab.values[f][int(c) - 1]
        rows.append(row)
    return pd.DataFrame(rows)


def counterfactual(model: Generator, matrix_path: str | os.PathLike[str], sets: dict[str, str],
                   out: str | os.PathLike[str], *, metadata: str | None = None,
                   samples: list[str] | None = None, batch: int = 256) -> pd.DataFrame:
    """Each sample of MATRIX, had ``sets`` been true: its technical (and, unless set,
    perturbation) latent and its residual are kept; only the groups with a set field move.
    The sample's own condition comes from ``metadata`` where given, else it is inferred
    from its latent (most likely seen condition). Returns per-sample old -> new codes."""
    data = model_view(model, matrix_path)
    if samples is not None:
        pos = {s: i for i, s in enumerate(data.samples)}
        bad = [s for s in samples if s not in pos]
        if bad:
            raise ConditionError(f"{matrix_path}: sample(s) {bad[:5]} are not in the matrix")
        rows = np.array([pos[s] for s in samples], dtype=np.int64)
    else:
        rows = np.arange(len(data.samples))
    moved = {group_of(f) for f in sets}
    meta = None
    if metadata is not None:
        meta, _ = read_metadata(metadata)
        missing = [data.samples[r] for r in rows if data.samples[r] not in meta.index]
        if missing:
            raise ConditionError(f"{metadata}: no row for matrix sample(s) {missing[:5]}; give "
                                 "metadata for every sample, or omit --metadata to infer it")
    lead = {"sample_id": pa.string(), **{f"{f}_from": pa.string() for f in sets},
            **{f: pa.string() for f in sets}}
    w = _Writer(Path(out), list(model.genes), lead)
    ok = False
    summary = []
    try:
        for idx, x in iter_row_batches(data, batch, rows):
            xt = torch.from_numpy(x)
            ids = [data.samples[i] for i in idx]
            old = _old_conditions(model, xt, ids, meta, moved)
            new = old.copy()
            for f, v in sets.items():
                new[f] = v
            y = model.counterfactual(xt, _codes(model, old), _codes(model, new), moved).numpy()
            w.write({"sample_id": ids, **{f"{f}_from": old[f].tolist() for f in sets},
                     **{f: new[f].tolist() for f in sets}}, y)
            summary.append(pd.DataFrame({"sample_id": ids, **{f"{f}_from": old[f].tolist()
                                                               for f in sets}}))
        ok = True
    finally:
        w.close(ok)
    return pd.concat(summary, ignore_index=True)


def _old_conditions(model: Generator, x: torch.Tensor, ids: list[str],
                    meta: pd.DataFrame | None, moved: set[str]) -> pd.DataFrame:
    fields = model.vocab.fields
    if meta is not None:
        rows = meta.reindex(ids)
        table = pd.DataFrame(UNKNOWN, index=range(len(ids)), columns=fields)
        for f in fields:
            if f in rows.columns:
                table[f] = [model.vocab.resolve(f, v, f"metadata sample {s}")
                            if not _blank(v) else UNKNOWN
                            for s, v in zip(ids, rows[f], strict=True)]
        return table
    z = model.encode(x)
    table = pd.DataFrame(UNKNOWN, index=range(len(ids)), columns=fields)
    for g, best in infer_conditions(model, z, set(PARTS)).items():
        known = _codes_from_keys(model, g, [model.agg_keys[g][j] for j in best])
        for f in known.columns:
            table[f] = known[f].fillna(UNKNOWN).to_numpy()
    return table


__all__ = ["KNOWN_FIELDS", "counterfactual", "generate", "parse_set", "read_query"]
