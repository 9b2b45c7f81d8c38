"""Train/val/test split by group (study, BioProject, participant): no group spans two splits.

Samples of one study share batch effects; splitting by sample would let the model see the
test study in training and inflate every held-out number.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from bulkfm.samples import id_column as find_id_column
from bulkfm.samples import read_sample_table

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
GROUP_COLUMNS = ("group", "bioproject", "study", "participant")


def make_split(samples: list[str], groups: list[str] | None = None, *, val_fraction: float = 0.1,
               test_fraction: float = 0.2, seed: int = 0) -> pd.DataFrame:
    """-> DataFrame(sample_id, group, split). Groups go whole to one split, filled greedily
    toward the target sample fractions in a seeded random group order."""
    if len(set(samples)) != len(samples):
        raise ValueError("duplicate sample ids; a split needs unique samples")
    groups = list(samples) if groups is None else [str(g) for g in groups]
    table = pd.DataFrame({"sample_id": samples, "group": groups})
    sizes = table.groupby("group", sort=True).size()
    rng = np.random.default_rng(seed)
    order = list(sizes.index[rng.permutation(len(sizes))])
    wanted = [s for s, f in zip(SPLITS, (1 - val_fraction - test_fraction, val_fraction,
                                         test_fraction), strict=True) if f > 0]
    fractions = {"train": 1 - val_fraction - test_fraction, "val": val_fraction,
                 "test": test_fraction}
    n = len(samples)
    assign: dict[str, str] = {}
    if len(order) < len(wanted):
        log.warning("only %d group(s) for %d splits: splitting by sample instead, so held-out "
                    "samples may share a group with training samples (optimistic metrics)",
                    len(order), len(wanted))
        table["group"] = table["sample_id"]
        sizes = table.groupby("group", sort=True).size()
        order = list(sizes.index[rng.permutation(len(sizes))])
    if len(order) < len(wanted):
        log.warning("only %d sample(s): all go to train; there is no held-out set", n)
        table["split"] = "train"
        return table
    count = dict.fromkeys(SPLITS, 0)
    # Every wanted split gets one group first (smallest splits first), then greedy fill.
    for s, g in zip(sorted(wanted, key=lambda s: fractions[s]), order, strict=False):
        assign[g] = s
        count[s] += int(sizes[g])
    for g in order[len(wanted):]:
        s = max(wanted, key=lambda s: fractions[s] * n - count[s])
        assign[g] = s
        count[s] += int(sizes[g])
    table["split"] = table["group"].map(assign)
    log.info("split %d samples in %d groups: %s", n, len(order),
             ", ".join(f"{s} {count[s]}" for s in SPLITS))
    return table


def read_groups(path: str | os.PathLike[str], samples: list[str],
                column: str | None = None, id_column: str | None = None) -> list[str] | None:
    """Group of every sample from a TSV/CSV/Parquet table (sample id + group column)."""
    path = Path(path)
    table = read_sample_table(path)
    id_col = id_column or find_id_column(table, known=samples, where=path)
    if id_col not in table.columns:
        raise ValueError(f"{path}: no column {id_col!r}; has {list(table.columns)}")
    # The first group column that is filled in (BioProject is empty for local samples, whose
    # sheet may give a study instead).
    present = [c for c in GROUP_COLUMNS if c in table.columns]
    filled = [c for c in present if _blank(table[c]).mean() < 1.0]
    col = column or next(iter(filled or present), None)
    if col is None:
        log.warning("%s: no group column (%s); splitting by sample", path,
                    ", ".join(GROUP_COLUMNS))
        return None
    if col not in table.columns:
        raise ValueError(f"{path}: no column {col!r}; has {list(table.columns)}")
    table = table.drop_duplicates(id_col).set_index(table.drop_duplicates(id_col)[id_col].astype(str))
    missing = [s for s in samples if s not in table.index]
    if missing:
        raise ValueError(f"{path}: {len(missing)} matrix sample(s) have no row (e.g. "
                         f"{', '.join(missing[:3])}); give a group for every sample")
    raw = table.loc[samples, col]
    is_blank = _blank(raw)
    values = raw.astype(object).where(~is_blank, "").map(str)
    blank = values[is_blank.to_numpy()]
    if len(blank):
        log.warning("%s: %d sample(s) without a %s; each becomes its own group", path,
                    len(blank), col)
    return [v if not b else f"__sample__{s}"
            for s, v, b in zip(samples, values, is_blank.to_numpy(), strict=True)]


def _blank(column: pd.Series) -> pd.Series:
    """Missing or empty cells (None, NaN, pandas NA, "", "nan", "None")."""
    text = column.astype(object).map(lambda v: "" if v is None else str(v).strip())
    return column.isna() | text.isin(["", "nan", "None", "<NA>"])


def read_split(path: str | os.PathLike[str], samples: list[str]) -> pd.DataFrame:
    """A splits.tsv checked against the matrix samples (every one listed once, known splits)."""
    path = Path(path)
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    if not {"sample_id", "split"} <= set(table.columns):
        raise ValueError(f"{path}: needs columns sample_id and split")
    bad = set(table["split"]) - set(SPLITS)
    if bad:
        raise ValueError(f"{path}: unknown split value(s) {sorted(bad)}; allowed {SPLITS}")
    if table["sample_id"].duplicated().any():
        raise ValueError(f"{path}: sample {table['sample_id'][table['sample_id'].duplicated()].iloc[0]!r} listed twice")
    known = set(samples)
    unknown = [s for s in table["sample_id"] if s not in known]
    if unknown:
        raise ValueError(f"{path}: {len(unknown)} sample(s) not in the matrix (e.g. "
                         f"{', '.join(unknown[:3])}); the split was made for another matrix")
    return table


def write_split(table: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    from bulkfm.common.atomic import atomic_path

    path = Path(path)
    with atomic_path(path, suffix=".tsv") as tmp:
        table[["sample_id", "group", "split"]].to_csv(tmp, sep="\t", index=False)
    return path
