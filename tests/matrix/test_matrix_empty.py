"""A matrix with zero samples is a clear error in every stage that reads one (issue 16, item 5),
not an IndexError traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from bulkfm.matrix.store import EmptyMatrixError, open_matrix

BULKFM = str(Path(sys.executable).with_name("bulkfm"))


@pytest.fixture()
def empty(tmp_path) -> Path:
    path = tmp_path / "m.parquet"
    pd.DataFrame({"gene": ["ENSG1", "ENSG2", "ENSG3"]}).to_parquet(path, index=False)
    return path


def test_open_matrix_refuses_zero_samples(empty):
    with pytest.raises(EmptyMatrixError, match="0 samples"):
        open_matrix(empty)


@pytest.mark.parametrize("args", [["split", "--samples", "{m}", "-o", "{t}/s.tsv"],
                                  ["graph", "build", "--matrix", "{m}", "-o", "{t}/e.parquet"],
                                  ["train", "--matrix", "{m}", "--out", "{t}/train", "--no-progress"]])
def test_stages_print_it_without_a_traceback(empty, tmp_path, args):
    argv = [a.format(m=empty, t=tmp_path) for a in args]
    res = subprocess.run([BULKFM, *argv], capture_output=True, text=True)
    assert res.returncode == 2, res.stderr[-2000:]
    assert "the matrix has 0 samples" in res.stderr and "Traceback" not in res.stderr
