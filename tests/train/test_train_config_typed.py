"""The training config is typed and frozen (issue 12): the model is a ModelSpec, cross-field
rules stop a config when it is built, and directories written while the model was a dict of
overrides still resume, load and evaluate."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd
import pytest

import bulkfm.model
from bulkfm.cli import main
from bulkfm.model.config import ModelConfig, ModelSpec
from bulkfm.train.config import from_dict, load_config, saved_config

# A model/config.json written before ModelSpec existed (bulkfm at 5a5244c): key order and lists
# as that version wrote them.
OLD_CHECKPOINT_MODEL = {
    "n_genes": 200, "ae_hidden": [128], "ae_latent": 64, "d_model": 32, "n_layers": 2,
    "n_heads": 4, "nb_features": 32, "ff_mult": 2, "dropout": 0.0, "use_gcn": False,
    "use_esm2": False, "esm2_dim": 0, "use_ae_context": True, "ae_residual": True,
    "ae_tokens": True, "ree_theta_min": 0.1, "ree_theta_max": 100.0, "mask_value": -10.0,
    "zero_masked_ree": False, "token_mlp": False, "pool": "mean", "seed": 0}


def test_configs_are_frozen_all_the_way_down() -> None:
    cfg = load_config(None)
    for obj, key in ((cfg, "seed"), (cfg.model, "d_model"), (cfg.ae, "steps")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(obj, key, 1)
    assert from_dict({"model": {"ae_hidden": [64, 32]}}).model.ae_hidden == (64, 32)
    changed = dataclasses.replace(cfg, seed=3)
    assert (changed.seed, cfg.seed) == (3, 0)


def test_cross_field_rules_stop_the_config_when_it_is_built() -> None:
    # 320 % 5 == 0 (full size) but 64 % 5 != 0: size auto resolves to cpu on a CPU.
    with pytest.raises(ValueError, match=r"not divisible by n_heads 5.*\(size cpu\)"):
        from_dict({"model": {"n_heads": 5}})
    # Checked against the size that is set: 100 % 4 == 0 for cpu, 100 % 8 != 0 for full.
    assert from_dict({"size": "cpu", "model": {"d_model": 100}}).model.n_heads == 4
    with pytest.raises(ValueError, match=r"d_model 100 .*\(size full\)"):
        from_dict({"size": "full", "model": {"d_model": 100}})
    with pytest.raises(ValueError, match="pool must be mean or max"):
        from_dict({"model": {"pool": "sum"}})
    with pytest.raises(ValueError, match="not divisible"):
        ModelConfig(n_genes=10, d_model=10, n_heads=4)
    with pytest.raises(ValueError, match="mask_fraction"):
        dataclasses.replace(load_config(None), mask_fraction=1.5)  # replace checks again


def test_a_checkpoint_config_written_before_the_typed_model_loads() -> None:
    cfg = ModelConfig.from_dict(OLD_CHECKPOINT_MODEL)
    assert cfg.to_dict() == {**OLD_CHECKPOINT_MODEL, "ae_hidden": (128,)}
    assert cfg.spec() == ModelSpec(ae_hidden=(128,), ae_latent=64, d_model=32, n_heads=4,
                                   nb_features=32, use_gcn=False, use_esm2=False)


def test_a_train_directory_written_with_the_model_dict_resumes_and_evaluates(
        tcga_small, tiny_config: Path, tmp_path: Path, capsys) -> None:
    matrix, labels = tcga_small
    out = tmp_path / "run"
    args = ["train", "--matrix", str(matrix), "--labels", str(labels), "--out", str(out),
            "--config", str(tiny_config), "--no-progress"]
    assert main(args) == 0
    # Rewrite DIR/config.json as bulkfm wrote it before: the model as the dict of the keys
    # resolved from the config and the size preset, in the record and in the fingerprint.
    record = json.loads((out / "config.json").read_text())
    old_model = {"ae_hidden": [32], "ae_latent": 8, "d_model": 16, "n_layers": 1, "n_heads": 2,
                 "nb_features": 8}
    record["train"]["model"] = record["fingerprint"]["model"] = old_model
    (out / "config.json").write_text(json.dumps(record, indent=2) + "\n")
    steps = len(pd.read_csv(out / "metrics.csv"))

    assert main(args) == 0  # the same settings: it resumes (nothing left to train)
    assert len(pd.read_csv(out / "metrics.csv")) == steps
    saved = saved_config(out)
    assert (saved.model.d_model, saved.model.use_gcn, saved.mask_fraction) == (16, True, 0.15)
    # no ESM2 file given: the data decided use_esm2 when the model was built
    assert bulkfm.model.load(out).config.spec() == dataclasses.replace(saved.model,
                                                                        use_esm2=False)
    assert main(["evaluate", str(out), "--matrix", str(matrix), "--labels", str(labels),
                 "-o", str(tmp_path / "eval"), "--no-progress"]) == 0
    result = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert result["mask_fraction"] == 0.15  # read from the old record

    # A real change of the model is still a different experiment.
    changed = tmp_path / "changed.yaml"
    changed.write_text(tiny_config.read_text().replace("d_model: 16", "d_model: 32"))
    assert main(args[:-3] + ["--config", str(changed), "--no-progress"]) == 2
    assert "model" in capsys.readouterr().err
