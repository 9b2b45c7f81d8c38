"""Another sheet with the demo's stand-ins stops at planning, naming every key; the demo sheet,
a production config and the explicit opt-out pass."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bulkfm.execution.defaults import check_demo_defaults, is_demo_sheet
from bulkfm.samples import check_sheet, read_sheet

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def config(monkeypatch) -> dict:
    monkeypatch.chdir(REPO)  # the config's paths are relative to the checkout, as snakemake runs
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def _sheet(tmp_path: Path, text: str):
    p = tmp_path / "mine.tsv"
    p.write_text(text)
    return check_sheet(read_sheet(p))


def test_demo_sheet_passes(config) -> None:
    sheet = check_sheet(read_sheet(REPO / config["samples"]))
    assert is_demo_sheet(sheet, REPO)
    check_demo_defaults(config, sheet, REPO)


def test_own_sheet_with_demo_defaults_names_every_key(config, tmp_path) -> None:
    sheet = _sheet(tmp_path, "accession\nSRR11217925\n")
    with pytest.raises(ValueError) as err:
        check_demo_defaults(config, sheet, REPO)
    msg = str(err.value)
    for key in ("quant.reference.transcripts", "quant.reference.tx2gene", "quant.reference.gene_table",
                "quant.qc.min_reads", "quant.qc.min_mapped", "model_data.matrix", "evaluate.labels",
                "allow_demo_defaults: true"):
        assert key in msg, key
    # the user's own local FASTQ (not the bundled reads) counts as another sheet too
    fq = tmp_path / "x_R1.fastq.gz"
    fq.write_bytes(b"")
    with pytest.raises(ValueError):
        check_demo_defaults(config, _sheet(tmp_path, f"fastq_1\n{fq}\n"), REPO)


def test_production_config_and_opt_out_pass(config, tmp_path) -> None:
    sheet = _sheet(tmp_path, "accession\nSRR11217925\n")
    check_demo_defaults({**config, "allow_demo_defaults": True}, sheet, REPO)
    prod = {**config, "model_data": {"matrix": None, "groups": None},
            "evaluate": {**config["evaluate"], "labels": None},
            "quant": {**config["quant"],
                      "reference": {"transcripts": "gencode.v48.transcripts.fa.gz", "tx2gene": None,
                                    "gene_table": "genes_gencode_v48.tsv.gz"},
                      "qc": {**config["quant"]["qc"], "min_reads": 1_000_000, "min_mapped": 500_000}}}
    check_demo_defaults(prod, sheet, REPO)
