"""Harmonize input is never accepted silently (issue 16, item 4): duplicate sample ids, attributes
that are not key -> value, a non-string sample id and non-UTF-8 bytes each stop with an error
naming the file and the line; the CLI prints it without a traceback (exit 2)."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from bulkfm.metadata.io import InputError, read_records

BULKFM = str(Path(sys.executable).with_name("bulkfm"))


def jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("rows, message", [
    ([{"sample_id": "S1", "attributes": {"tissue": "lung"}}, {"sample_id": "S2", "attributes": {}},
      {"sample_id": "S1", "attributes": {"tissue": "liver"}}], r"in\.jsonl:3: sample_id 'S1' appears again \(first at .*in\.jsonl:1\)"),
    ([{"sample_id": "S1", "attributes": ["lung", "female"]}], r"in\.jsonl:1 \(sample S1\): 'attributes' item 0 is 'lung'"),
    ([{"sample_id": ["S1", "S2"], "attributes": {"tissue": "lung"}}], r"in\.jsonl:1: 'sample_id' must be a string, got list"),
    ([{"sample_id": {"id": "S1"}, "attributes": {}}], r"in\.jsonl:1: 'sample_id' must be a string, got dict"),
    ([{"sample_id": True, "attributes": {}}], r"in\.jsonl:1: 'sample_id' must be a string, got bool"),
    (['{"sample_id": "S1", "attributes": "[\\"lung\\"]"}'], r"in\.jsonl:1 \(sample S1\): 'attributes' must be an object"),
])
def test_bad_jsonl_names_file_and_line(tmp_path, rows, message):
    path = jsonl(tmp_path / "in.jsonl", rows)
    with pytest.raises(InputError, match=message):
        list(read_records(path))


def test_pairs_and_key_value_lists_are_still_attributes(tmp_path):
    path = jsonl(tmp_path / "in.jsonl", [{"sample_id": "S1", "attributes": [["tissue", "lung"], {"key": "sex", "value": "F"}]},
                                          {"sample_id": 7, "attributes": {"tissue": "liver"}}])
    recs = list(read_records(path))
    assert recs[0].attributes == {"tissue": "lung", "sex": "F"} and recs[1].sample_id == "7"


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz", ".tsv"])
def test_non_utf8_bytes_name_the_line(tmp_path, suffix):
    if suffix == ".tsv":
        body = b"sample_id\tattributes\n" + b"".join(b'S%d\t{"tissue": "lung"}\n' % i for i in range(1, 30000))
        body += b'S30000\t{"tissue": "p\xe9riph\xe9rique"}\n'  # latin-1 bytes on line 30001
        line = 30001
    else:
        body = b'{"sample_id": "S1", "attributes": {}}\n{"sample_id": "S2", "attributes": {"tissue": "p\xe9ri"}}\n'
        line = 2
    path = tmp_path / f"in{suffix}"
    path.write_bytes(gzip.compress(body) if suffix.endswith(".gz") else body)
    with pytest.raises(InputError, match=rf"in{suffix.replace('.', '[.]')}:{line}: byte 0xe9 .* is not UTF-8; re-encode"):
        list(read_records(path))


def test_parquet_duplicates_and_list_ids(tmp_path):
    path = tmp_path / "in.parquet"
    pd.DataFrame({"sample_id": ["A", "B", "A"], "attributes": ['{"tissue": "lung"}'] * 3}).to_parquet(path)
    with pytest.raises(InputError, match=r"in\.parquet row 3: sample_id 'A' appears again \(first at .*row 1\)"):
        list(read_records(path))


def test_tsv_duplicate_names_both_lines(tmp_path):
    path = tmp_path / "in.tsv"
    path.write_text('sample_id\tattributes\nA\t{"tissue": "lung"}\nB\t{}\nA\t{"tissue": "liver"}\n')
    with pytest.raises(InputError, match=r"in\.tsv:4 \(row 3\): sample_id 'A' appears again \(first at .*in\.tsv:2 \(row 1\)\)"):
        list(read_records(path))


def test_cli_prints_the_error_without_a_traceback(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"sample_id": "S1", "attributes": {"tissue": "\xff"}}\n')
    res = subprocess.run([BULKFM, "metadata", "harmonize", str(path), "-o", str(tmp_path / "h.parquet")],
                         capture_output=True, text=True)
    assert res.returncode == 2, res.stderr
    assert "in.jsonl:1: byte 0xff" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "h.parquet").exists()
