"""The held-out set comes from the run's splits.tsv as written (issue 16, item 5): test samples
missing from the matrix are named (warning + protocol in metrics.json), none present is an error."""

from __future__ import annotations

import logging

import pandas as pd
import pytest

from bulkfm.evaluate.run import DataError, _held_out


@pytest.fixture()
def train_dir(tmp_path):
    split = pd.DataFrame({"sample_id": ["t1", "t2", "t3", "v1", "x1", "x2", "x3"],
                          "split": ["train", "train", "train", "val", "test", "test", "test"]})
    split.to_csv(tmp_path / "splits.tsv", sep="\t", index=False)
    return tmp_path


def test_missing_test_samples_are_named(train_dir, caplog):
    caplog.set_level(logging.WARNING)
    held, train, protocol = _held_out(train_dir, ["t1", "t2", "t3", "v1", "x1"])
    assert held.tolist() == [4] and train.tolist() == [0, 1, 2]
    assert "2 of 3 missing from the matrix: x2, x3" in protocol
    assert "2 of 3 test samples are not in the matrix and are not scored: x2, x3" in caplog.text


def test_no_test_sample_in_the_matrix_is_an_error_not_the_val_split(train_dir):
    with pytest.raises(DataError, match=r"none of the 3 test samples is in this matrix \(e\.g\. x1, x2, x3\)"):
        _held_out(train_dir, ["t1", "t2", "t3", "v1"])


def test_complete_matrix_scores_the_test_split(train_dir, caplog):
    held, _, protocol = _held_out(train_dir, ["x3", "t1", "t2", "t3", "v1", "x1", "x2"])
    assert held.tolist() == [0, 5, 6] and protocol.startswith("test split") and "missing" not in protocol
    assert "not scored" not in caplog.text


def test_a_new_matrix_is_scored_whole(train_dir):
    held, train, protocol = _held_out(train_dir, ["n1", "n2"])
    assert held.tolist() == [0, 1] and not len(train) and protocol == "all samples (new matrix)"
