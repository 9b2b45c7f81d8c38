"""Training config: the size preset fills only what a config leaves out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import bulkfm.model
from bulkfm.cli import main
from bulkfm.model.config import ModelSpec
from bulkfm.train.config import SIZES, TrainConfig, from_dict, load_config, saved_config


def _preset(size: str) -> ModelSpec:
    return ModelSpec(**SIZES[size]["model"])


def test_size_auto_is_full_on_a_gpu_and_cpu_sized_on_a_cpu() -> None:
    default = load_config(None)
    gpu = default.resolved("cuda")
    assert (gpu.size, gpu.max_genes, gpu.model) == ("full", 0, ModelSpec())  # BulkFormer size
    cpu = default.resolved("cpu")
    assert cpu.size == "cpu" and cpu.max_genes == SIZES["cpu"]["max_genes"] > 0
    assert cpu.model == _preset("cpu")
    assert cpu.model_config(1000, 0).d_model == SIZES["cpu"]["model"]["d_model"]


def test_keys_given_win_over_the_preset() -> None:
    cfg = from_dict({"max_genes": 0, "model": {"d_model": 128, "use_gcn": False}}).resolved("cpu")
    assert cfg.max_genes == 0  # every gene, as asked
    assert cfg.model.d_model == 128 and cfg.model.use_gcn is False
    assert cfg.model.ae_latent == SIZES["cpu"]["model"]["ae_latent"]  # left out: preset
    full = from_dict({"size": "full"}).resolved("cpu")
    assert (full.max_genes, full.model) == (0, ModelSpec())
    # A key given with the default's value still wins over the preset.
    assert from_dict({"model": {"d_model": 320}}).resolved("cpu").model.d_model == 320
    # Built directly: the keys that differ from the defaults are the given ones.
    direct = TrainConfig(model=ModelSpec(d_model=128)).resolved("cpu")
    assert (direct.model.d_model, direct.model.ae_latent) == (128, 64)


def test_unknown_size_is_refused() -> None:
    with pytest.raises(ValueError, match="size must be"):
        from_dict({"size": "huge"})


def test_train_without_size_keys_on_cpu_records_the_preset(tcga_small, tmp_path: Path) -> None:
    matrix, labels = tcga_small
    config = tmp_path / "steps.yaml"  # training length only: sizes come from the preset
    config.write_text("ae: {steps: 2, batch_size: 8, lr: 0.001}\n"
                      "transformer: {steps: 2, batch_size: 4, lr: 0.001}\n"
                      "num_threads: 1\ndevice: cpu\n")
    out = tmp_path / "run"
    assert main(["train", "--matrix", str(matrix), "--labels", str(labels), "--out", str(out),
                 "--config", str(config), "--no-progress"]) == 0
    recorded = json.loads((out / "config.json").read_text())["train"]
    assert recorded["size"] == "cpu"
    assert recorded["model"] == json.loads(json.dumps(_preset("cpu").to_dict()))
    model = bulkfm.model.load(out)
    assert model.config.d_model == SIZES["cpu"]["model"]["d_model"]
    assert model.config.ae_hidden == SIZES["cpu"]["model"]["ae_hidden"]
    # The same command resumes (the resolved config matches the run's fingerprint).
    assert main(["train", "--matrix", str(matrix), "--labels", str(labels), "--out", str(out),
                 "--config", str(config), "--no-progress"]) == 0


def test_bulkformer_preset_follows_the_paper_and_trains(tcga_small, tmp_path: Path) -> None:
    cfg = from_dict({"size": "bulkformer"}).resolved("cpu")
    m = cfg.model
    assert (m.n_layers, m.ff_mult, m.nb_features) == (12, 4, 256)
    assert m.token_mlp and m.zero_masked_ree and m.pool == "max"
    assert cfg.transformer.lr == 1e-4 and cfg.joint_context
    given = from_dict({"size": "bulkformer", "transformer": {"lr": 3e-4}}).resolved("cpu")
    assert given.transformer.lr == 3e-4  # a key given wins over the preset
    matrix, labels = tcga_small
    config = tmp_path / "bf.yaml"
    config.write_text("size: bulkformer\nmodel: {n_layers: 2, nb_features: 16}\n"
                      "ae: {steps: 2, batch_size: 8, lr: 0.001}\n"
                      "transformer: {steps: 3, batch_size: 4, lr: 0.0001}\nnum_threads: 1\n")
    out = tmp_path / "run"
    assert main(["train", "--matrix", str(matrix), "--labels", str(labels), "--out", str(out),
                 "--config", str(config), "--no-progress"]) == 0
    model = bulkfm.model.load(out)
    assert model.config.token_mlp and model.config.pool == "max"
    assert model.tokenizer.mlp is not None and model.config.ff_mult == 4
    # joint context: stage 2 moved the AE inside the model away from stage 1's AE
    from safetensors.torch import load_file

    ae = load_file(str(out / "ae" / "weights.safetensors"))
    inner = load_file(str(out / "model" / "weights.safetensors"))
    k = next(iter(k for k in ae if k.startswith("encoder.")))
    assert not (ae[k] == inner[f"ae.{k}"]).all()
