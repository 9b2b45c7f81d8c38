"""Gene aggregation with tximport semantics, against numbers computed by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bulkfm.quant.aggregate import (GeneAggregator, Tx2GeneMismatch, length_scaled_tpm,
                                    read_quant, scaled_tpm)
from bulkfm.quant.reference import gene_order, read_tx2gene

TX2GENE = pd.DataFrame({
    "transcript_id": ["ENST00000000001.1", "ENST00000000002.1", "ENST00000000003.2", "ENST00000000004.1"],
    "gene_id": ["ENSG00000000001.5", "ENSG00000000001.5", "ENSG00000000002.1", "ENSG00000000003.1"],
    "gene_name": ["A", "A", "B", "C"],
    "gene_type": ["protein_coding", "protein_coding", "lncRNA", "protein_coding"],
})
QUANT = pd.DataFrame({
    "Name": ["ENST00000000001.1", "ENST00000000002.1", "ENST00000000003.2", "ENST00000000004.1"],
    "Length": [1000, 2000, 500, 800],
    "EffectiveLength": [800.0, 1800.0, 300.0, 600.0],
    "TPM": [100.0, 300.0, 600.0, 0.0],
    "NumReads": [10.0, 60.0, 20.0, 0.0],
})


def test_tximport_numbers_by_hand():
    genes = gene_order(TX2GENE)
    assert genes["gene_id"].tolist() == ["ENSG00000000001", "ENSG00000000002", "ENSG00000000003"]  # versions stripped, sorted
    vec = GeneAggregator(TX2GENE, genes).aggregate(QUANT, "s1")
    np.testing.assert_allclose(vec.tpm, [400.0, 600.0, 0.0])
    np.testing.assert_allclose(vec.counts, [70.0, 20.0, 0.0])
    # length = TPM-weighted mean of effective lengths: (100*800 + 300*1800) / 400 = 1550
    # G3 has no abundance: unweighted mean of its transcripts' effective lengths (600)
    np.testing.assert_allclose(vec.length, [1550.0, 300.0, 600.0])
    assert vec.n_unmapped_transcripts == 0


def test_scaled_and_length_scaled_tpm_by_hand():
    counts, tpm = np.array([70.0, 20.0, 0.0]), np.array([400.0, 600.0, 0.0])
    # scaledTPM: TPM rescaled to the library size 90 -> 400/1000*90 = 36, 54
    np.testing.assert_allclose(scaled_tpm(counts, tpm), [36.0, 54.0, 0.0])
    # lengthScaledTPM: TPM * mean length, rescaled to 90: 400*1000=4e5, 600*500=3e5 -> 90*4/7, 90*3/7
    np.testing.assert_allclose(length_scaled_tpm(counts, tpm, np.array([1000.0, 500.0, 7.0])),
                               [90 * 4 / 7, 90 * 3 / 7, 0.0])


def test_transcripts_missing_from_tx2gene_are_counted_not_dropped_silently():
    quant = pd.concat([QUANT, pd.DataFrame({"Name": ["t9.1"], "Length": [10], "EffectiveLength": [5.0],
                                            "TPM": [1.0], "NumReads": [3.0]})], ignore_index=True)
    agg = GeneAggregator(TX2GENE, gene_order(TX2GENE), max_unmapped_fraction=0.5)
    vec = agg.aggregate(quant, "s1")
    assert vec.n_unmapped_transcripts == 1 and vec.unmapped_reads == 3.0
    np.testing.assert_allclose(vec.counts, [70.0, 20.0, 0.0])


def test_tx2gene_of_another_reference_is_a_clear_error():
    other = TX2GENE.assign(transcript_id=["x1", "x2", "x3", "x4"])
    with pytest.raises(Tx2GeneMismatch, match="does not match the salmon index"):
        GeneAggregator(other, gene_order(other)).aggregate(QUANT, "s7")


def test_transcript_versions_differing_from_the_index_are_matched():
    quant = QUANT.assign(Name=[f"ENST0000000000{i}" for i in range(1, 5)])  # index built without versions
    vec = GeneAggregator(TX2GENE, gene_order(TX2GENE)).aggregate(quant, "s1")
    np.testing.assert_allclose(vec.counts, [70.0, 20.0, 0.0])


def test_real_geuvadis_quant_with_three_transcripts_absent_from_tx2gene(shared_data):
    d = shared_data / "geuvadis_salmon_quant"
    tx2gene = read_tx2gene(d / "tx2gene.csv.gz")
    quant = read_quant(d / "ERR188021" / "quant.sf.gz")
    genes = gene_order(tx2gene)
    vec = GeneAggregator(tx2gene, genes).aggregate(quant, "ERR188021")
    assert vec.n_unmapped_transcripts == 3  # the real edge case named in the data README
    mapped = ~quant["Name"].isin(set(tx2gene["transcript_id"]))
    assert vec.counts.sum() == pytest.approx(quant["NumReads"].sum() - quant.loc[mapped, "NumReads"].sum(),
                                             rel=1e-5)
    assert len(genes) == tx2gene["gene_id"].nunique()
