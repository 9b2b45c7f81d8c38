"""bulkfm train end to end on real data: outputs, resume == uninterrupted, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

import bulkfm.model
from bulkfm.cli import main
from bulkfm.train import loop
from bulkfm.train.choose import _candidate_dir, regularisation_name
from bulkfm.train.config import load_config
from bulkfm.train.run import train


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path / "weights.safetensors"))


def test_train_writes_loadable_outputs(tcga_small, tiny_config: Path, tmp_path: Path) -> None:
    matrix, labels = tcga_small
    out = tmp_path / "run"
    rc = main(["train", "--matrix", str(matrix), "--labels", str(labels), "--out", str(out),
               "--config", str(tiny_config), "--no-progress"])
    assert rc == 0
    for name in ("config.json", "genes.txt", "splits.tsv", "metrics.csv", "training_curves.png",
                 "graph/edges.parquet", "ae/manifest.json", "model/manifest.json"):
        assert (out / name).exists(), name
    model = bulkfm.model.load(out)  # one call, no workflow
    assert model.kind == "bulkformer" and len(model.genes) == 60
    metrics = pd.read_csv(out / "metrics.csv")
    assert list(metrics.groupby("stage")["step"].max()) == [6, 6]
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["resolved"]["use_esm2"] is False  # no esm2.pt given -> learned gene embedding
    # bulkfm embed (sample embeddings) on the same matrix
    emb = tmp_path / "emb"
    assert main(["embed", str(out), "--matrix", str(matrix), "-o", str(emb)]) == 0
    s = pd.read_parquet(emb / "sample_embeddings.parquet")
    g = pd.read_parquet(emb / "gene_embeddings.parquet")
    n_train = int((pd.read_csv(out / "splits.tsv", sep="\t")["split"] == "train").sum())
    n_pca = min(50, n_train - 1)  # embed_pca 50, fitted on the train split
    pca_cols = [c for c in s.columns if c.startswith("pca_")]
    sample_cols = [c for c in s.columns if c.startswith("embedding_")]
    assert len(pca_cols) == n_pca and s.shape == (40, 1 + len(sample_cols) + n_pca + 16 + 8)
    # the model's sample embedding is the saved definition applied to its blocks
    from bulkfm.model.readout import load_readout

    definition = load_readout(out).embedding
    blocks = {"pca": s[pca_cols].to_numpy(), "ae": s.filter(like="ae_").to_numpy(),
              "pooled": s.filter(like="emb_").to_numpy()}
    assert sample_cols and np.allclose(definition(blocks), s[sample_cols].to_numpy(), atol=1e-5)
    assert json.loads((out / "summary.json").read_text())["readout"]["embedding"]["how"]
    assert g.shape == (60, 1 + 16)
    # the PCA part is the train-split PCA of the raw log1p: train rows are centred on average
    train_ids = pd.read_csv(out / "splits.tsv", sep="\t").query("split == 'train'")["sample_id"]
    assert np.allclose(s.set_index("sample_id").loc[train_ids, pca_cols].mean(), 0, atol=1e-3)


class _StopAfter(loop.StopFlag):
    """Acts as if SIGTERM arrived after ``n`` steps (checked once per step)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n
        self._sig = None

    @property  # type: ignore[override]
    def signal(self):
        self.n -= 1
        return 15 if self.n < 0 else None

    @signal.setter
    def signal(self, value) -> None:
        pass


def test_resume_equals_uninterrupted(tcga_small, tiny_config: Path, tmp_path: Path,
                                     monkeypatch) -> None:
    matrix, labels = tcga_small
    tcfg = load_config(tiny_config)
    train(str(matrix), tmp_path / "straight", tcfg, labels=str(labels), progress=False)

    out = tmp_path / "interrupted"
    # stops after n checks, at the next step: in stage 1's first candidate (training mask 0.15)
    # at step 4; then, after the mask candidates' other 2 + 6 + 6 steps (ae_mask_choices), in
    # the first regularisation candidate (dropout 0.3) at its step 5; then, after its last step
    # and the second one's 6 steps, in stage 2 at step 2
    for stop_after, where in ((3, r"ae step 4; checkpoint \S*/ae_mask_0\.15/"),
                              (18, r"ae step 5; checkpoint \S*/ae_mask_[\d.]+_dropout_0\.3/"),
                              (8, r"model step 2; .* Rerun the same command")):
        monkeypatch.setattr("bulkfm.train.run.StopFlag", lambda n=stop_after: _StopAfter(n))
        with pytest.raises(loop.Preempted, match=where):
            train(str(matrix), out, tcfg, labels=str(labels), progress=False)
    monkeypatch.setattr("bulkfm.train.run.StopFlag", loop.StopFlag)
    assert (out / "checkpoints" / "model" / "step-00000002" / "manifest.json").exists()
    train(str(matrix), out, tcfg, labels=str(labels), progress=False)

    for stage in ("ae", "model"):
        a, b = _weights(tmp_path / "straight" / stage), _weights(out / stage)
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), (stage, k)
    choice = json.loads((out / "choices.json").read_text())["ae_mask_fraction"]
    assert choice == json.loads((tmp_path / "straight" / "choices.json").read_text())[
        "ae_mask_fraction"]
    assert choice["chosen"] == min(choice["candidates"],
                                   key=lambda f: choice["validation_masked_mse"][f"{f:g}"])
    # then the regularisation, at the chosen mask: the best by validation is DIR/ae
    reg = json.loads((out / "choices.json").read_text())["ae_regularisation"]
    scores = reg["validation_masked_mse"]
    assert [regularisation_name(r) for r in reg["candidates"]] == list(scores) == [
        "own", "dropout_0.3", "weight_decay_1"] and reg["mask_fraction"] == choice["chosen"]
    assert regularisation_name(reg["chosen"]) == min(scores, key=scores.get)
    best = _candidate_dir(out, choice["chosen"], reg["chosen"]) / "ae"
    assert all(torch.equal(v, _weights(out / "ae")[k]) for k, v in _weights(best).items())
    dropped = _candidate_dir(out, choice["chosen"], {"dropout": 0.3}) / "ae"
    assert json.loads((dropped / "config.json").read_text())["model"]["dropout"] == 0.3
    own = _weights(_candidate_dir(out, choice["chosen"]) / "ae")
    assert not all(torch.equal(v, own[k]) for k, v in _weights(dropped).items())
    m1 = pd.read_csv(tmp_path / "straight" / "metrics.csv")
    m2 = pd.read_csv(out / "metrics.csv")
    assert np.allclose(m1["loss"], m2["loss"])  # same batches, masks and losses


def test_resume_with_changed_config_is_refused(tcga_small, tiny_config: Path,
                                               tmp_path: Path, capsys) -> None:
    matrix, labels = tcga_small
    out = tmp_path / "run"
    args = ["train", "--matrix", str(matrix), "--out", str(out), "--config", str(tiny_config),
            "--no-progress"]
    assert main(args) == 0
    changed = tmp_path / "changed.yaml"
    changed.write_text(tiny_config.read_text().replace("mask_fraction", "x") +
                       "mask_fraction: 0.3\n")
    assert main(args[:-3] + ["--config", str(changed), "--no-progress"]) == 2
    assert "mask_fraction" in capsys.readouterr().err


def test_nan_loss_stops_with_a_clear_error_and_no_checkpoint(tcga_small, tiny_config: Path,
                                                             tmp_path: Path,
                                                             monkeypatch) -> None:
    matrix, _ = tcga_small

    def nan_loss(module, x, mask, x_in, **_):
        return module(x_in)[0].mean() * float("nan")

    monkeypatch.setattr("bulkfm.train.run.ae_loss", nan_loss)
    with pytest.raises(loop.Diverged, match="loss is nan"):
        train(str(matrix), tmp_path / "run", load_config(tiny_config), progress=False)
    assert not (tmp_path / "run" / "checkpoints" / "ae").exists()


@pytest.mark.parametrize("bad,message", [(np.nan, "NaN/Inf"), (-3.0, "negative values")])
def test_bad_values_name_the_sample(tcga_small, tiny_config: Path, tmp_path: Path, capsys,
                                    bad: float, message: str) -> None:
    matrix, _ = tcga_small
    table = pd.read_parquet(matrix)
    sample = table.columns[5]  # a real sample column
    table.loc[3, sample] = bad
    broken = tmp_path / "broken.parquet"
    table.to_parquet(broken, index=False)
    rc = main(["train", "--matrix", str(broken), "--out", str(tmp_path / "run"),
               "--config", str(tiny_config), "--no-progress"])
    err = capsys.readouterr().err
    # Every reader (Parquet, HDF5, bulkfm's store) names the file and the sample to fix.
    assert rc == 2 and message in err and "broken.parquet" in err and repr(sample) in err


def test_graph_for_other_genes_is_refused(tcga_small, tiny_config: Path, tmp_path: Path,
                                          capsys) -> None:
    from bulkfm.graph.io import write_edges

    matrix, _ = tcga_small
    graph = tmp_path / "edges.parquet"
    write_edges(graph, ["ENSG01", "ENSG02"], ["ENSG02", "ENSG03"], np.array([0.9, 0.8]))
    rc = main(["train", "--matrix", str(matrix), "--out", str(tmp_path / "run"),
               "--config", str(tiny_config), "--graph", str(graph), "--no-progress"])
    assert rc == 2 and "no edge connects two model genes" in capsys.readouterr().err


def test_esm2_embeddings_are_aligned_by_symbol_and_missing_genes_learned(
        tcga_small, tiny_config: Path, tmp_path: Path, capsys) -> None:
    from bulkfm.embed.io import save_gene_embeddings

    matrix, _ = tcga_small
    genes = pd.read_parquet(matrix, columns=["gene"])["gene"].tolist()  # SYMBOL|ENTREZ
    symbols = [g.split("|")[0] for g in genes[:40] if not g.startswith("?")]
    n = len(symbols)
    record = {"genes": symbols, "embeddings": torch.randn(n, 12),
              "has_protein": torch.arange(n) % 4 != 0, "model": "test", "embed_dim": 12}
    esm = tmp_path / "esm2.pt"
    save_gene_embeddings(esm, record)
    out = tmp_path / "run"
    assert main(["train", "--matrix", str(matrix), "--out", str(out), "--config",
                 str(tiny_config), "--esm2", str(esm), "--no-progress"]) == 0
    model = bulkfm.model.load(out)
    has = model.tokenizer.identity.has_protein
    assert model.config.use_esm2 and model.config.esm2_dim == 12
    assert int(has.sum()) == int(record["has_protein"].sum())  # the rest: learned vectors
    # embeddings made for other gene ids: a clear error naming the fix
    other = tmp_path / "other.pt"
    save_gene_embeddings(other, {**record, "genes": [f"NOTAGENE{i}" for i in range(n)]})
    rc = main(["train", "--matrix", str(matrix), "--out", str(tmp_path / "run2"), "--config",
               str(tiny_config), "--esm2", str(other), "--no-progress"])
    assert rc == 2 and "use_esm2: false" in capsys.readouterr().err


def test_archs4_style_hdf5_trains_and_evaluates(tcga_small, tiny_config: Path,
                                                tmp_path: Path, capsys) -> None:
    import h5py

    matrix, labels = tcga_small
    table = pd.read_parquet(matrix)
    h5 = tmp_path / "archs4.h5"
    with h5py.File(h5, "w") as f:  # ARCHS4 layout: genes x samples counts + metadata
        f["data/expression"] = np.round(table.drop(columns="gene").to_numpy()).astype(np.uint32)
        f["meta/genes/symbol"] = np.array([g.split("|")[0] for g in table["gene"]], dtype="S")
        f["meta/samples/geo_accession"] = np.array(table.columns[1:], dtype="S")
    out = tmp_path / "run"
    assert main(["train", "--matrix", str(h5), "--labels", str(labels), "--out", str(out),
                 "--config", str(tiny_config), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(out), "--matrix", str(h5), "--labels", str(labels),
                 "--no-progress"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["n_held_out"] > 0 and "model" in result["reconstruction"]
