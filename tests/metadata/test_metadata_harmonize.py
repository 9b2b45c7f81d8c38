"""The `bulkfm metadata harmonize` contract: inputs, schema, IDs, dedupe, review read-back, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from bulkfm.metadata.pipeline import Harmonizer, RawRecord, Settings
from bulkfm.metadata.schema import FIELDS

# the installed console script (``python -m bulkfm.cli`` would load cli.py twice, as
# __main__ and bulkfm.cli, so UserError raised by a stage would escape its handler)
BULKFM = str(Path(sys.executable).with_name("bulkfm"))


ROWS = [
    {"sample_id": "A", "attributes": {"tissue": "lung", "sex": "female", "age": "45 years", "disease state": "healthy"}},
    {"sample_id": "B", "attributes": {"cell line": "HeLa", "treatment": "10 uM doxorubicin for 24h"}},
    {"sample_id": "C", "attributes": {"tisue": "liver biopsy", "gender": "M", "donor_age": "62",
                                      "diagnosis": "hepatocellular carcinoma"}},
    {"sample_id": "D", "attributes": {"cell type": "CD4+ T cells", "source_name": "PBMC from healthy donor",
                                      "transfection": "siRNA against GATA3"}},
    {"sample_id": "E", "text": "peripheral blood mononuclear cells from a 30 year old male with breast cancer"},
]
EXPECT = {
    ("A", "tissue"): "UBERON:0002048", ("A", "sex"): "PATO:0000383", ("A", "disease"): "PATO:0000461",
    ("A", "age_years"): "45", ("B", "cell_line"): "CVCL_0030", ("B", "perturbation_identity"): "CHEBI:28748",
    ("B", "perturbation_type"): "compound", ("B", "dose"): "10 µM", ("B", "time"): "24 h",
    ("B", "sample_type"): "cell line", ("C", "tissue"): "UBERON:0002107", ("C", "sex"): "PATO:0000384",
    ("C", "disease"): "MONDO:0007256", ("C", "age_years"): "62", ("D", "cell_type"): "CL:0000624",
    ("D", "perturbation_type"): "RNAi", ("D", "perturbation_identity"): "GATA3", ("E", "cell_type"): "CL:2000001",
    ("E", "sex"): "PATO:0000384", ("E", "age_years"): "30", ("E", "disease"): "MONDO:0007254",
}


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


class _Res:
    def __init__(self, returncode: int, stderr: str) -> None:
        self.returncode, self.stderr = returncode, stderr


def _cli(*args, check=True, subprocess_run=False):
    """In-process by default (the index stays loaded); subprocess_run for the console script itself."""
    argv = ["metadata", *map(str, args)]
    if subprocess_run:
        res = subprocess.run([BULKFM, *argv], capture_output=True, text=True)
    else:
        import contextlib
        import io

        from bulkfm.cli import main

        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            try:
                rc = main(argv)
            except Exception as exc:  # an uncaught error is a failure of the CLI contract
                import traceback

                rc, _ = 1, err.write("Traceback\n" + "".join(traceback.format_exception(exc)))
        res = _Res(rc, err.getvalue())
    if check:
        assert res.returncode == 0, res.stderr
    return res


def _check(df: pd.DataFrame, ids=EXPECT) -> None:
    assert list(df.columns) == ["sample_id", "field", "value", "ontology_id", "source", "method", "confidence"]
    assert len(df) == df.sample_id.nunique() * len(FIELDS)  # every sample gets every field
    assert set(df.field) == set(FIELDS)
    got = {(r.sample_id, r.field): r for r in df.itertuples()}
    for (s, f), want in ids.items():
        r = got[(s, f)]
        assert want in (r.ontology_id, r.value), (s, f, r.value, r.ontology_id)
    answered = df[df.value.notna() | df.ontology_id.notna()]
    assert set(answered.method) <= {"sra_field", "rule", "lexicon", "embedding", "llm", "imputed", "reviewed"}
    assert answered.confidence.between(0, 1).all() and answered.source.notna().all()


@pytest.mark.parametrize("fmt", ["jsonl", "parquet", "tsv"])
def test_cli_contract_all_formats(tmp_path, index, fmt):
    src = tmp_path / f"in.{fmt}"
    if fmt == "jsonl":
        write_jsonl(src, ROWS)
    else:
        df = pd.DataFrame([{"sample_id": r["sample_id"], "attributes": json.dumps(r.get("attributes", {})),
                            "text": r.get("text", "")} for r in ROWS])
        df.to_parquet(src) if fmt == "parquet" else df.to_csv(src, sep="\t", index=False)
    out, wide, review = tmp_path / "h.parquet", tmp_path / "h.tsv", tmp_path / "review.tsv"
    _cli("harmonize", src, "-o", out, "--wide", wide, "--review", review, "--no-embedding")
    _check(pd.read_parquet(out))
    w = pd.read_csv(wide, sep="\t", dtype=str)
    assert list(w.sample_id) == ["A", "B", "C", "D", "E"]
    assert w.loc[w.sample_id == "A", "tissue"].item() == "lung"
    assert w.loc[w.sample_id == "A", "tissue_id"].item() == "UBERON:0002048"


def test_sra_metadata_table(tmp_path, index):
    """results/sra/metadata.parquet as the sra stage writes it: run id, attributes JSON, SRA columns."""
    rows = [{"run": "SRR1", "sample": "SRS1", "study": "SRP1", "bioproject": "PRJNA1",
             "attributes": json.dumps({"tissue": "Lung", "sex": "F"}), "library_strategy": "RNA-Seq",
             "library_selection": "cDNA", "library_layout": "paired", "instrument": "Illumina HiSeq 2500",
             "library_source": "TRANSCRIPTOMIC", "title": "lung rep 1", "description": None, "organism": "Homo sapiens"}]
    src = tmp_path / "metadata.parquet"
    pd.DataFrame(rows).to_parquet(src)
    out = tmp_path / "h.parquet"
    _cli("harmonize", src, "-o", out, "--no-embedding", subprocess_run=True)  # the real console script
    df = pd.read_parquet(out).set_index("field")
    assert df.loc["tissue", "ontology_id"] == "UBERON:0002048"
    assert df.loc["library_layout", "value"] == "PAIRED" and df.loc["library_layout", "method"] == "sra_field"
    assert df.loc["instrument", "value"] == "Illumina HiSeq 2500"
    assert df.loc["library_strategy", "confidence"] == 1.0


def test_dedupe_unique_attribute_sets(index):
    h = Harmonizer(index, Settings(embedding=False))
    recs = [RawRecord(f"R{i}", {"tissue": ["lung", "liver", "brain"][i % 3], "sex": "male"}) for i in range(3000)]
    out = list(h.harmonize(recs))
    assert len(out) == 3000 and h.stats["unique_sets"] == 3
    assert {f["tissue"].ontology_id for _, f in out} == {"UBERON:0002048", "UBERON:0002107", "UBERON:0000955"}


def test_embedding_step_finds_what_lookup_misses(index, small_embedder):
    h = Harmonizer(index, Settings(embedding_ontologies=("CL",)), embedder=small_embedder)
    (_, f), = list(h.harmonize([RawRecord("X", {"cell type": "helper T-lymphocytes, activated"})]))
    fv = f["cell_type"]
    assert fv.ontology_id and index.is_a(fv.ontology_id, "CL:0000084"), fv  # some T cell
    assert fv.method in ("embedding", "lexicon")


def test_review_queue_read_back_as_reviewed(tmp_path, index):
    src = write_jsonl(tmp_path / "in.jsonl", [
        {"sample_id": f"S{i}", "attributes": {"tissue": "zorblatt organ of the lower thing"}} for i in range(4)] + [
        {"sample_id": "T", "attributes": {"tissue": "lung"}}])
    out, review = tmp_path / "h.parquet", tmp_path / "review.tsv"
    _cli("harmonize", src, "-o", out, "--review", review, "--no-embedding")
    q = pd.read_csv(review, sep="\t", dtype=str, keep_default_na=False)
    row = q[(q.field == "tissue") & (q.raw_value.str.startswith("zorblatt"))]
    assert len(row) == 1 and row.n_samples.item() == "4"  # one row per unique raw text
    q.loc[row.index, "reviewed_id"] = "UBERON:0002107"
    edited = tmp_path / "reviewed.tsv"
    q.to_csv(edited, sep="\t", index=False)
    _cli("harmonize", src, "-o", out, "--review", review, "--reviewed", edited, "--no-embedding")
    df = pd.read_parquet(out)
    t = df[(df.field == "tissue") & df.sample_id.str.startswith("S")]
    assert set(t.ontology_id) == {"UBERON:0002107"} and set(t.method) == {"reviewed"} and set(t.confidence) == {1.0}
    # a reviewed ID that is not a term of the field's ontology is refused with a clear message
    q.loc[row.index, "reviewed_id"] = "CL:0000084"
    q.to_csv(edited, sep="\t", index=False)
    res = _cli("harmonize", src, "-o", out, "--reviewed", edited, "--no-embedding", check=False)
    assert res.returncode == 2 and "reviewed_id 'CL:0000084'" in res.stderr


@pytest.mark.parametrize("content,msg", [
    ('{"attributes": {"tissue": "lung"}}\n', "no sample_id"),
    ('{"sample_id": "A", "attributes": "{not json"}\n', "not valid JSON"),
    ('{"sample_id": "A"}\n', "needs an 'attributes' or a 'text'"),
    ("not json at all\n", "in.jsonl:1"),
])
def test_bad_input_gives_clear_error_and_no_output(tmp_path, index, content, msg):
    src = tmp_path / "in.jsonl"
    src.write_text(content)
    out = tmp_path / "h.parquet"
    res = _cli("harmonize", src, "-o", out, "--no-embedding", check=False, subprocess_run=msg == "no sample_id")
    assert res.returncode == 2 and msg in res.stderr and "Traceback" not in res.stderr
    assert not out.exists()  # atomic: nothing half-written


def test_tsv_without_required_columns(tmp_path, index):
    src = tmp_path / "in.tsv"
    src.write_text("id\ttissue\nA\tlung\n")
    res = _cli("harmonize", src, "-o", tmp_path / "h.parquet", "--no-embedding", check=False)
    assert res.returncode == 2 and "sample_id" in res.stderr


def test_config_file_inline_json_and_unknown_keys(tmp_path, index):
    src = write_jsonl(tmp_path / "in.jsonl", ROWS[:1])
    out = tmp_path / "h.parquet"
    # the workflow passes its section as JSON text; review threshold 1.0 sends every field to review
    _cli("harmonize", src, "-o", out, "--review", tmp_path / "r.tsv",
         "--config", json.dumps({"embedding": False, "review_threshold": 1.0, "reviewed": None, "llm": {"base_url": None}}))
    assert len(pd.read_csv(tmp_path / "r.tsv", sep="\t")) >= 3
    cfg = tmp_path / "c.yaml"
    cfg.write_text("metadata:\n  embeding: false\n")  # a typo in a key is an error, not silently ignored
    res = _cli("harmonize", src, "-o", out, "--config", cfg, check=False)
    assert res.returncode == 2 and "embeding" in res.stderr
