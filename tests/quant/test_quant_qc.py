"""QC gate on Salmon's reports, including the real ISR library that Salmon calls "IU"."""

from __future__ import annotations

import json

from bulkfm.quant.qc import QCThresholds, evaluate_qc, infer_library_type


def test_real_stranded_library_reported_as_IU_is_read_from_counts(shared_data):
    d = shared_data / "encode_chr19_rnaseq" / "salmon_1.10.1_reference_output" / "ENCSR653DFZ_rep1"
    meta = json.loads((d / "meta_info.json").read_text())
    libfmt = json.loads((d / "lib_format_counts.json").read_text())
    assert libfmt["expected_format"] == "IU"
    res = evaluate_qc(meta, libfmt, QCThresholds(min_mapping_rate=50))
    assert res.passed and res.library_type == "stranded-reverse"
    assert res.mapping_rate == 93.01 and res.reads_processed == 10000
    strict = evaluate_qc(meta, libfmt, QCThresholds(min_mapping_rate=95, min_reads_processed=20000,
                                                     library_type="unstranded"))
    assert not strict.passed
    assert len(strict.reasons) == 3
    assert "mapping rate 93.0% < 95" in strict.reasons[0]


def test_library_type_inference():
    assert infer_library_type({"ISF": 900, "ISR": 100})[0] == "stranded-forward"
    assert infer_library_type({"SR": 50, "SF": 50})[0] == "unstranded"
    assert infer_library_type({"U": 100})[0] == "unstranded"
