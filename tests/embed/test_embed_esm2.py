"""ESM2 embeddings through fair-esm's real local loader, with a tiny official-format checkpoint."""

from __future__ import annotations

import gzip
import logging
import os

import pytest
import torch

from bulkfm.cli import main
from bulkfm.embed.esm2 import embed_sequences, load_esm2, windows
from bulkfm.embed.io import load_gene_embeddings, read_gene_embeddings


def direct_mean(model, alphabet, seq: str, layer: int) -> torch.Tensor:
    """The definition: one protein alone, mean of the layer over its residues."""
    _, _, tokens = alphabet.get_batch_converter()([("p", seq)])
    with torch.no_grad():
        reps = model(tokens, repr_layers=[layer])["representations"][layer]
    return reps[0, 1 : len(seq) + 1].mean(0)


@pytest.fixture(scope="module")
def loaded(tiny_esm2):
    path, original = tiny_esm2
    model, alphabet, name = load_esm2(path)
    return model, alphabet, name, original


def test_loader_reproduces_the_saved_model(loaded, proteins):
    model, alphabet, name, original = loaded
    assert name == "esm2_t2_64_tiny" and model.num_layers == 2 and model.embed_dim == 64
    seq = proteins.loc[proteins["gene_symbol"] == "MYC", "sequence"].item()
    a = direct_mean(model, alphabet, seq, 2)
    b = direct_mean(original, alphabet, seq, 2)
    torch.testing.assert_close(a, b)


def test_embeddings_equal_direct_forward_and_ignore_batching(loaded, proteins):
    model, alphabet, _, _ = loaded
    short = proteins[proteins["length"] < 300].head(12)["sequence"].tolist()
    batched, stats = embed_sequences(model, alphabet, short, batch_tokens=2000, progress=False)
    alone, _ = embed_sequences(model, alphabet, short, batch_tokens=1, progress=False)
    assert stats.n_batches < len(short) and stats.n_residues == sum(map(len, short))
    assert stats.n_computed == stats.n_residues  # all shorter than a window
    torch.testing.assert_close(batched, alone, atol=2e-5, rtol=1e-4)
    for i in (0, 7):
        torch.testing.assert_close(batched[i], direct_mean(model, alphabet, short[i], 2),
                                   atol=2e-5, rtol=1e-4)
    first, _ = embed_sequences(model, alphabet, short[:3], repr_layer=1, progress=False)
    torch.testing.assert_close(first[2], direct_mean(model, alphabet, short[2], 1), atol=2e-5,
                               rtol=1e-4)
    assert not torch.allclose(first, batched[:3])  # the layer really changes the vectors


def test_long_proteins_use_overlapping_windows(loaded, proteins):
    model, alphabet, _, _ = loaded
    seq = proteins.loc[proteins["gene_symbol"] == "MYC", "sequence"].item()  # 439 aa
    assert windows(439, 200) == [(0, 200), (100, 300), (200, 400), (239, 439)]
    assert windows(200, 200) == [(0, 200)]
    got, stats = embed_sequences(model, alphabet, [seq], max_residues=200, progress=False)
    assert stats.n_windows == 4 and (stats.n_residues, stats.n_computed) == (439, 800)
    # Reference: per-residue mean over the windows covering it, then mean over residues.
    total = torch.zeros(len(seq), 64, dtype=torch.float64)
    cover = torch.zeros(len(seq), 1, dtype=torch.float64)
    conv = alphabet.get_batch_converter()
    for s, e in windows(len(seq), 200):
        _, _, tokens = conv([("w", seq[s:e])])
        with torch.no_grad():
            reps = model(tokens, repr_layers=[2])["representations"][2][0, 1 : e - s + 1]
        total[s:e] += reps.double()
        cover[s:e] += 1
    torch.testing.assert_close(got[0], (total / cover).mean(0).float(), atol=2e-5, rtol=1e-4)
    whole = direct_mean(model, alphabet, seq, 2)
    assert not torch.allclose(got[0], whole, atol=1e-3)  # windows really were used


def test_cli_embeds_tcga_genes_and_loader_aligns(tiny_esm2, proteins, tmp_path, caplog):
    path, _ = tiny_esm2
    picked = proteins[proteins["length"] < 250].head(6)
    fasta = tmp_path / "p.fa.gz"
    with gzip.open(fasta, "wt") as f:
        for r in picked.itertuples():
            f.write(f">{r.gene_symbol} uniprot={r.uniprot_acc} entrez={r.entrez_gene_id} "
                    f"ensembl={r.ensembl_gene_id}\n{r.sequence}\n")
    tcga_ids = [f"{r.gene_symbol}|{r.entrez_gene_id}" for r in picked.itertuples()]
    genes = [*tcga_ids[:4], "NOPROTEIN|1", *tcga_ids[4:]]
    gene_list = tmp_path / "genes.txt"
    gene_list.write_text("\n".join(genes) + "\n")
    out = tmp_path / "embed" / "esm2.pt"
    with caplog.at_level(logging.INFO):
        rc = main(["embed-genes", "--proteins", str(fasta), "--genes", str(gene_list),
                   "--weights", str(path), "-o", str(out), "--batch-tokens", "600"])
    assert rc == 0
    assert "6 of 7 genes have a protein" in caplog.text and "1 get a zero vector" in caplog.text
    record = read_gene_embeddings(out)
    assert record["genes"] == genes and record["model"] == "esm2_t2_64_tiny"
    assert record["has_protein"].tolist() == [True] * 4 + [False, True, True]
    assert record["embeddings"][4].abs().sum() == 0
    # Part B's view: the model's genes in another order and spelling (store: Ensembl ids).
    ens = picked["ensembl_gene_id"].tolist()
    emb, has = load_gene_embeddings(out, [ens[5], "ENSG00000000000", ens[0]])
    assert has.tolist() == [True, False, True]
    model, alphabet, _ = load_esm2(path)
    seq = picked["sequence"].iloc[5]
    torch.testing.assert_close(emb[0], direct_mean(model, alphabet, seq, 2), atol=2e-5,
                               rtol=1e-4)
    assert emb[1].abs().sum() == 0


def test_weights_by_name_from_hub_cache_and_clear_errors(tiny_esm2, tmp_path, monkeypatch):
    path, _ = tiny_esm2
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    checkpoints = tmp_path / "torch" / "hub" / "checkpoints"
    with pytest.raises(FileNotFoundError, match=f"{checkpoints}.*never\\s+downloads"):
        load_esm2("esm2_t2_64_tiny")
    checkpoints.mkdir(parents=True)
    os.symlink(path, checkpoints / path.name)
    with pytest.raises(FileNotFoundError, match="contact-regression.pt is missing"):
        load_esm2("esm2_t2_64_tiny")
    regression = path.parent / "esm2_t2_64_tiny-contact-regression.pt"
    os.symlink(regression, checkpoints / regression.name)
    model, _, name = load_esm2("esm2_t2_64_tiny")
    assert name == "esm2_t2_64_tiny" and model.num_layers == 2
    with pytest.raises(FileNotFoundError, match="not found; put the checkpoint there"):
        load_esm2(tmp_path / "nowhere" / "esm2_t6_8M_UR50D.pt")


def test_cli_missing_weights_is_a_user_error(shared_data, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    (tmp_path / "g.txt").write_text("TP53\n")
    rc = main(["embed-genes", "--proteins",
               str(shared_data / "human_proteins_subset/gene_protein_subset.fasta.gz"),
               "--genes", str(tmp_path / "g.txt"), "--weights", "esm2_t33_650M_UR50D",
               "-o", str(tmp_path / "e.pt")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "esm2_t33_650M_UR50D" in err and "torch hub cache" in err
    assert not (tmp_path / "e.pt").exists()
