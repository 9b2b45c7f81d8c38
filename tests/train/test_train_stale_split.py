"""A rerun after a training run that failed while preparing does not reuse its splits.tsv
(issue 16, item 5): the new split file (or new fractions) is what the rerun trains on."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from bulkfm.train.config import from_dict
from bulkfm.train.prepare import DataError, prepare


def _split(path: Path, samples: list[str], n_train: int) -> str:
    pd.DataFrame({"sample_id": samples, "split": ["train"] * n_train + ["test"] * (len(samples) - n_train),
                  "group": samples}).to_csv(path, sep="\t", index=False)
    return str(path)


def test_rerun_after_failed_prepare_uses_the_new_split(tcga_small, tmp_path):
    matrix, _ = tcga_small
    samples = [c for c in pd.read_parquet(matrix).columns if c != "gene"]
    tcfg = from_dict({"max_genes": 0, "model": {"use_gcn": False, "use_esm2": False}})
    out = tmp_path / "train"
    bad = _split(tmp_path / "bad.tsv", samples, 1)  # one train sample: preparation fails
    with pytest.raises(DataError, match="1 train sample"):
        prepare(out, str(matrix), tcfg, labels=None, splits=bad)
    good = _split(tmp_path / "good.tsv", samples, 30)
    prepare(out, str(matrix), tcfg, labels=None, splits=good)  # before the fix: "1 train sample(s)" again
    split = pd.read_csv(out / "splits.tsv", sep="\t")
    assert (split["split"] == "train").sum() == 30
    assert (out / "config.json").exists()
