"""Grouped train/val/test split."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from bulkfm.cli import main
from bulkfm.train.split import make_split


def test_no_group_spans_two_splits_and_fractions_are_close() -> None:
    samples = [f"s{i}" for i in range(300)]
    groups = [f"study{i // 7}" for i in range(300)]  # 43 studies
    table = make_split(samples, groups, val_fraction=0.1, test_fraction=0.2, seed=3)
    assert (table.groupby("group")["split"].nunique() == 1).all()
    frac = table["split"].value_counts(normalize=True)
    assert abs(frac["train"] - 0.7) < 0.05 and abs(frac["test"] - 0.2) < 0.05
    assert make_split(samples, groups, seed=3).equals(make_split(samples, groups, seed=3))
    assert not make_split(samples, groups, seed=4)["split"].equals(table["split"])


def test_too_few_groups_still_gives_a_valid_split_and_warns(caplog) -> None:
    with caplog.at_level(logging.WARNING):
        table = make_split(["a", "b", "c", "d"], ["p1"] * 4, val_fraction=0.1, test_fraction=0.2)
    assert set(table["split"]) == {"train", "val", "test"}
    assert "splitting by sample" in caplog.text
    with caplog.at_level(logging.WARNING):
        single = make_split(["a"], None)
    assert list(single["split"]) == ["train"] and "no held-out" in caplog.text


def test_split_cli_on_a_real_matrix_with_groups(tcga_small, tmp_path: Path) -> None:
    matrix, labels = tcga_small
    out = tmp_path / "splits.tsv"
    assert main(["split", "--samples", str(matrix), "--groups", str(labels), "-o", str(out)]) == 0
    table = pd.read_csv(out, sep="\t")
    assert list(table.columns) == ["sample_id", "group", "split"] and len(table) == 40
    assert (table.groupby("group")["split"].nunique() == 1).all()
    assert table["group"].str.startswith("TCGA-").all()  # participants, from the labels file
