"""bulkfm train --init: continue a pretrained model on a new matrix (real TCGA data)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from safetensors.torch import load_file

import bulkfm.model
from bulkfm.cli import main

GENE_TABLE = "gene_table_gencode_v48/orgHsEgDb_3.16_entrez_symbol_ensembl.tsv.gz"


@pytest.fixture(scope="module")
def pretrained(shared_data: Path, tmp_path_factory, tcga_writer,
               tiny_config_text) -> tuple[Path, Path, Path, Path]:
    """(pretrained dir, its config, a new matrix of other samples, its labels)."""
    root = tmp_path_factory.mktemp("init")
    cfg = root / "tiny.yaml"
    cfg.write_text(tiny_config_text)
    pre_m, pre_l = tcga_writer(shared_data, root, 40, 60, seed=0)
    new_root = root / "new"
    new_root.mkdir()
    # other samples, the pretrained run's genes (top variance genes differ by sample subset)
    new_m, new_l = tcga_writer(shared_data, new_root, 40, 400, seed=5)
    genes = pd.read_parquet(pre_m, columns=["gene"])["gene"]
    table = pd.read_parquet(new_m)
    src = shared_data / "tcga_rnaseqv2_6cohorts" / "expression_rsem_normalized.genes_x_samples.parquet"
    full = pd.read_parquet(src, columns=["gene", *table.columns[1:]])
    full[full["gene"].isin(genes)].reset_index(drop=True).to_parquet(new_m, index=False)
    out = root / "pre"
    assert main(["train", "--matrix", str(pre_m), "--labels", str(pre_l), "--out", str(out),
                 "--config", str(cfg), "--no-progress"]) == 0
    return out, cfg, new_m, new_l


def _train(args: list[str]) -> int:
    return main(["train", *args, "--no-progress"])


def test_init_keeps_genes_stats_graph_and_starts_from_the_weights(pretrained, tmp_path: Path,
                                                                  capsys) -> None:
    pre, cfg, new_m, new_l = pretrained
    out = tmp_path / "ft"
    assert _train(["--matrix", str(new_m), "--labels", str(new_l), "--out", str(out),
                   "--config", str(cfg), "--init", str(pre)]) == 0
    assert (out / "genes.txt").read_text() == (pre / "genes.txt").read_text()
    a = pd.read_parquet(out / "gene_stats.parquet")
    b = pd.read_parquet(pre / "gene_stats.parquet")
    pd.testing.assert_frame_equal(a, b)  # normalisation kept, not refitted on the new matrix
    assert (out / "graph" / "edges.parquet").read_bytes() == \
        (pre / "graph" / "edges.parquet").read_bytes()
    w0, w1 = load_file(str(pre / "model" / "weights.safetensors")), \
        load_file(str(out / "model" / "weights.safetensors"))
    assert w0.keys() == w1.keys()
    changed = [k for k in w0 if not np.array_equal(w0[k].numpy(), w1[k].numpy())]
    assert changed and "scaler.mean" not in changed  # trained on, stats untouched
    gmap = pd.read_csv(out / "gene_map.tsv", sep="\t", keep_default_na=False)
    assert (gmap["matrix_gene"] != "").all()
    capsys.readouterr()
    assert main(["evaluate", str(out), "--matrix", str(new_m), "--labels", str(new_l),
                 "--no-progress", "--probe-repeats", "0"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert "zero_shot" in res["reconstruction"]  # the pretrained model, not fine-tuned
    assert res["reconstruction"]["model"]["pcc"] > res["reconstruction"]["gene_mean"]["pcc"]
    # from scratch on the same genes and split, scored beside it on the same samples and masks
    scratch = tmp_path / "scratch"
    assert _train(["--matrix", str(new_m), "--out", str(scratch), "--config", str(cfg),
                   "--splits", str(out / "splits.tsv")]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(out), "--matrix", str(new_m), "--no-progress",
                 "--probe-repeats", "0", "--compare", str(scratch), "-o",
                 str(tmp_path / "ev2")]) == 0
    res2 = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    rec = res2["reconstruction"]
    assert rec["compare:scratch"]["n_masked"] == rec["model"]["n_masked"]
    assert "compare:scratch" in res2["paired"]
    from bulkfm.evaluate.run import evaluate

    alone = evaluate(scratch, new_m, out=tmp_path / "ev3", progress=False)
    assert abs(alone["reconstruction"]["model"]["pcc"] - rec["compare:scratch"]["pcc"]) < 1e-6


def test_missing_genes_are_masked_and_never_scored(pretrained, tmp_path: Path) -> None:
    pre, cfg, new_m, new_l = pretrained
    table = pd.read_parquet(new_m)
    cut = tmp_path / "cut.parquet"
    table.iloc[15:].reset_index(drop=True).to_parquet(cut, index=False)  # 45 of 60 genes
    out = tmp_path / "ft"
    assert _train(["--matrix", str(cut), "--labels", str(new_l), "--out", str(out),
                   "--config", str(cfg), "--init", str(pre)]) == 0
    gmap = pd.read_csv(out / "gene_map.tsv", sep="\t", keep_default_na=False)
    assert (gmap["matrix_gene"] == "").sum() == 15
    metrics = pd.read_csv(out / "metrics.csv")
    assert np.isfinite(metrics["loss"]).all() and metrics["loss"].max() < 50  # no -10 targets
    from bulkfm.evaluate.run import evaluate

    res = evaluate(out, cut, out=tmp_path / "ev", progress=False, allow_missing=0.3)
    assert res["reconstruction"]["model"]["n_masked"] > 0


def test_other_gene_id_type_needs_the_gene_table(pretrained, shared_data: Path, tmp_path: Path,
                                                  capsys) -> None:
    pre, cfg, new_m, new_l = pretrained
    gt = pd.read_csv(shared_data / "tcga_rnaseqv2_6cohorts" / "genes.tsv.gz", sep="\t",
                     dtype=str, keep_default_na=False)
    to_ens = dict(zip(gt["gene"], gt["ensembl_gene_id_orgHsEgDb_3.16"], strict=True))
    table = pd.read_parquet(new_m)
    table["gene"] = [to_ens.get(g) or f"NOENS{i}" for i, g in enumerate(table["gene"])]
    table = table.drop_duplicates("gene")
    ens = tmp_path / "ensembl.parquet"
    table.to_parquet(ens, index=False)
    args = ["--matrix", str(ens), "--labels", str(new_l), "--config", str(cfg),
            "--init", str(pre)]
    assert _train([*args, "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "ensembl ids" in err and "symbol|entrez" in err and "--gene-table" in err
    out = tmp_path / "b"
    assert _train([*args, "--out", str(out), "--gene-table",
                   str(shared_data / GENE_TABLE)]) == 0
    gmap = pd.read_csv(out / "gene_map.tsv", sep="\t", keep_default_na=False)
    mapped = gmap[gmap["matrix_gene"] != ""]
    assert len(mapped) >= 0.8 * len(gmap)
    for g, e in zip(mapped["gene"], mapped["matrix_gene"], strict=True):
        assert to_ens[g] == e  # TP53|7157 -> ENSG00000141510, via Entrez


def test_too_few_shared_genes_is_an_error(pretrained, tmp_path: Path, capsys) -> None:
    pre, cfg, new_m, new_l = pretrained
    table = pd.read_parquet(new_m)
    few = tmp_path / "few.parquet"
    table.iloc[:25].to_parquet(few, index=False)  # 25 of 60 genes
    assert _train(["--matrix", str(few), "--labels", str(new_l), "--out", str(tmp_path / "x"),
                   "--config", str(cfg), "--init", str(pre)]) == 2
    err = capsys.readouterr().err
    assert "25 of the 60 genes" in err and "too few to transfer" in err


@pytest.mark.parametrize("remove", ["model/manifest.json", "gene_stats.parquet", "ae"])
def test_incomplete_pretrained_model_is_named(pretrained, tmp_path: Path, capsys,
                                              remove: str) -> None:
    pre, cfg, new_m, new_l = pretrained
    broken = tmp_path / "pre"
    shutil.copytree(pre, broken)
    target = broken / remove
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    assert _train(["--matrix", str(new_m), "--out", str(tmp_path / "x"), "--config", str(cfg),
                   "--init", str(broken)]) == 2
    err = capsys.readouterr().err
    assert "incomplete" in err and remove.split("/")[0] in err


def test_pretrained_model_loads_alone(pretrained) -> None:
    pre, *_ = pretrained
    assert bulkfm.model.load(pre).kind == "bulkformer"
