"""FASTA header formats and the canonical (longest) protein per gene, on real sequences."""

from __future__ import annotations

import gzip

from bulkfm.embed.proteins import canonical_proteins, parse_header, proteins_for_genes, read_fasta


def test_parse_header_formats():
    gencode = ("ENSP00000269305.9|ENST00000269305.9|ENSG00000141510.18|OTTHUMG00000162125.10|"
               "OTTHUMT00000367397.3|TP53-201|TP53|393|")
    assert parse_header(gencode) == ("ENSP00000269305.9", "TP53", ("ENSG00000141510.18",))
    ensembl = ("ENSP00000269305.4 pep chromosome:GRCh38:17:7661779:7687538:-1 "
               "gene:ENSG00000141510.18 transcript:ENST00000269305.9 gene_biotype:protein_coding "
               "transcript_biotype:protein_coding gene_symbol:TP53 description:tumor protein p53")
    assert parse_header(ensembl) == ("ENSP00000269305.4", "TP53", ("ENSG00000141510.18",))
    uniprot = ("sp|P04637|P53_HUMAN Cellular tumor antigen p53 OS=Homo sapiens OX=9606 GN=TP53 "
               "PE=1 SV=4")
    assert parse_header(uniprot) == ("P04637", "TP53", ())
    subset = "GSTT2B uniprot=P0CG30 entrez=653689 ensembl=ENSG00000133433;ENSG00000280550"
    assert parse_header(subset) == ("P0CG30", "GSTT2B", ("ENSG00000133433", "ENSG00000280550"))
    assert parse_header("just_an_id") == ("just_an_id", None, ())


def test_canonical_longest_and_matching(proteins, tmp_path):
    rows = proteins.set_index("gene_symbol").loc[["AKT1", "EGFR", "MYC"]]
    akt1, egfr, myc = rows["sequence"]
    fasta = tmp_path / "gencode.fa.gz"
    with gzip.open(fasta, "wt") as f:
        # GENCODE style: two AKT1 isoforms (an N-terminal truncation and the full protein),
        # EGFR with a stop codon and lower case, one record with an unknown header.
        f.write(">ENSP1.1|ENST1.1|ENSG00000142208.18|x|x|AKT1-202|AKT1|%d|\n%s\n"
                % (len(akt1) - 39, akt1[39:]))
        f.write(">ENSP2.1|ENST2.1|ENSG00000142208.18|x|x|AKT1-201|AKT1|%d|\n" % len(akt1))
        f.write("\n".join(akt1[i:i + 60] for i in range(0, len(akt1), 60)) + "\n")
        f.write(">ENSP3.1|ENST3.1|ENSG00000146648.21|x|x|EGFR-201|EGFR|%d|\n%s*\n"
                % (len(egfr), egfr.lower()))
        f.write(f">mystery\n{myc}\n")
    records = list(read_fasta(fasta))
    assert len(records) == 4
    gp = canonical_proteins(records)
    assert gp.n_without_gene == 1
    by_symbol = {p.symbol: p for p in gp.proteins}
    assert by_symbol["AKT1"].protein_id == "ENSP2.1" and by_symbol["AKT1"].sequence == akt1
    assert by_symbol["EGFR"].sequence == egfr  # stop removed, upper-cased
    got = proteins_for_genes(["EGFR|1956", "ENSG00000142208", "MYC|4609", "AKT1"], gp)
    assert [p.protein_id if p else None for p in got] == ["ENSP3.1", "ENSP2.1", None, "ENSP2.1"]
    # A bulkfm store: Ensembl ids (versionless) + symbols as gene_names.
    got = proteins_for_genes(["ENSG00000146648", "ENSG00000000001"], gp, ["EGFR", "NOPE"])
    assert got[0].protein_id == "ENSP3.1" and got[1] is None


def test_reads_the_real_subset(shared_data):
    gp = canonical_proteins(read_fasta(shared_data / "human_proteins_subset/gene_protein_subset"
                                                     ".fasta.gz"))
    assert gp.n_records == len(gp.proteins) == 968  # one per gene already
    assert all(set(p.sequence) <= set("ACDEFGHIKLMNPQRSTVWYXBUZO") for p in gp.proteins)
