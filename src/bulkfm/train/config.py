"""Training configuration: defaults, YAML loading, validation.

A config file is YAML with the keys below (the workflow's ``train:`` section has the same
shape); unknown keys are errors, so a typo never silently trains with a default.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from bulkfm.common.settings import JOB_KEYS, check_keys
from bulkfm.model.config import ModelConfig, ModelSpec

log = logging.getLogger(__name__)

# Keys of the workflow's train: section that size the job, not the model (train.smk keeps them).
WORKFLOW_KEYS = JOB_KEYS["train"]

# Model size for the keys a config leaves out (``size``). "full" is BulkFormer's size (every
# gene, AE 4096 -> 1024 -> 320, d 320): ~100 s per stage-2 step on 2 CPU cores at 20k genes,
# so it is for GPUs. "cpu" is the same architecture at the size the CPU benchmark uses
# (benchmarks/train_tcga.yaml says size: cpu), which trains on a few hundred samples in minutes.
# "bulkformer" follows the BulkFormer paper point by point where bulkfm has the switch (12
# Performer layers, FF x4, 256 random features, a token MLP, expression embedding zeroed at
# masked genes, max pooling, lr 1e-4, the sample context trained jointly in stage 2) at the cpu
# preset's widths; docs/model.md lists each difference to the default with its measured reason.
_CPU_MODEL = {"ae_hidden": (512, 128), "ae_latent": 64, "d_model": 64, "n_heads": 4,
              "nb_features": 32}
SIZES: dict[str, dict[str, Any]] = {
    "full": {"max_genes": 0, "model": {}},
    "cpu": {"max_genes": 1000, "model": _CPU_MODEL},
    "bulkformer": {"max_genes": 1000,
                   "model": {**_CPU_MODEL, "n_layers": 12, "ff_mult": 4, "nb_features": 256,
                             "token_mlp": True, "zero_masked_ree": True, "pool": "max"},
                   "train": {"transformer_lr": 1e-4, "joint_context": True}},
}


_DEFAULT_LR = 1e-3
# The sizes ``auto`` can resolve to (full on a GPU, cpu on a CPU): a config must be valid for both.
_AUTO_SIZES = ("full", "cpu")


@dataclass(frozen=True)
class StageConfig:
    steps: int
    lr: float
    batch_size: int


def _model_for(size: str, given: Mapping[str, Any]) -> ModelSpec:
    """The model of ``size``'s preset with the keys a config gives on top."""
    try:
        return ModelSpec(**{**SIZES[size]["model"], **given})
    except ValueError as exc:
        raise ValueError(f"train.model: {exc} (size {size})") from None


AE_REGULARISERS = ("dropout", "weight_decay")


def _regularisations(entries: Any) -> tuple[tuple[tuple[str, float], ...], ...]:
    """``ae_regularisation_choices`` from YAML/JSON (a list of mappings) or the frozen form,
    as a tuple of sorted (key, value) pairs; a bad key or value is an error naming it."""
    out = []
    for entry in entries or ():
        pairs = dict(entry.items() if isinstance(entry, Mapping) else entry)
        bad = sorted(set(pairs) - set(AE_REGULARISERS))
        if bad:
            raise ValueError(f"ae_regularisation_choices: unknown key(s) {bad}; each entry may "
                             f"set {' and/or '.join(AE_REGULARISERS)}")
        pairs = {k: float(v) for k, v in pairs.items()}
        if not 0 <= pairs.get("dropout", 0.0) < 1 or pairs.get("weight_decay", 0.0) < 0:
            raise ValueError(f"ae_regularisation_choices: {pairs}: dropout must be in [0, 1) "
                             "and weight_decay >= 0")
        out.append(tuple(sorted(pairs.items())))
    return tuple(out)


@dataclass(frozen=True)
class TrainConfig:
    model: ModelSpec = field(default_factory=ModelSpec)
    # The model keys the config states: they win over the size preset, which fills the others
    # (``resolved``). None = the keys whose value differs from ModelSpec's default.
    model_set: frozenset[str] | None = field(default=None, repr=False, compare=False)
    # Size preset filling max_genes and the model's size keys left out: auto = full on a GPU,
    # cpu on a CPU (``resolved``); keys that are given always win.
    size: str = "auto"
    max_genes: int | None = None  # 0 = every gene; N = top-N by variance over the train split
    esm2: str | None = None  # esm2.pt; None or model.use_esm2 false -> learned nn.Embedding
    graph: str | None = None  # edges.parquet; None -> built from the train split here
    graph_top_k: int = 20
    graph_min_pcc: float = 0.4
    val_fraction: float = 0.1
    test_fraction: float = 0.2
    mask_fraction: float = 0.15
    # Stage 1's training mask (its denoising level), chosen per matrix among these by the
    # validation samples' masked-gene MSE (bulkfm.train.choose); fewer than 2 values = no
    # choice, stage 1 trains at mask_fraction.
    ae_mask_choices: tuple[float, ...] = (0.15, 0.3, 0.5)
    # Then stage 1's regularisation, chosen the same way at the chosen mask: each entry
    # overrides the run's own AE dropout (model.dropout) and/or weight_decay ({} = the run's
    # own settings); fewer than 2 entries = no choice. YAML: [{}, {dropout: 0.3}, ...].
    ae_regularisation_choices: tuple[tuple[tuple[str, float], ...], ...] = (
        (), (("dropout", 0.3),), (("weight_decay", 1.0),))
    # Stage 2: extra fraction of the observed genes hidden from the frozen AE context (training
    # only), to make the AE err on train samples as on unseen ones. Off: no gain on TCGA.
    context_extra_mask: float = 0.0
    ae: StageConfig = StageConfig(steps=300, lr=_DEFAULT_LR, batch_size=32)
    transformer: StageConfig = StageConfig(steps=300, lr=_DEFAULT_LR, batch_size=8)
    weight_decay: float = 0.01
    warmup_steps: int = 20
    grad_clip: float = 1.0
    checkpoint_every: int = 100
    keep_checkpoints: int = 2
    eval_every: int = 50
    eval_batches: int = 4
    # Stage 2 also trains the AE context (BulkFormer learns its sample context jointly); off =
    # the AE is frozen after stage 1 (the default: measured in docs/model.md).
    joint_context: bool = False
    # Continue from a pretrained ``bulkfm train`` directory (``--init``): its genes, gene
    # statistics, graph and weights are kept; the new matrix is matched to its genes by id
    # (bulkfm.train.init). gene_table: Entrez/symbol/Ensembl table to map across id types.
    init: str | None = None
    gene_table: str | None = None
    # Early stopping: stop a stage when its validation loss has not improved for this many
    # evaluations (eval_every steps each); the best-by-validation weights are the ones kept.
    # 0 = off (the last step's weights are kept). steps is then the ceiling.
    early_stopping_patience: int = 4
    # Readout fitted on the validation split after training (bulkfm.model.readout): convex
    # blend of the trunk, the AE and kNN over training samples; PCA of the training samples
    # for the sample embedding.
    blend: bool = True
    knn_k: int = 10
    max_reference: int = 2000  # training samples kept as the kNN reference
    embed_pca: int = 50  # PCA components of raw log1p in the sample embedding (0 = none)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    bf16: str | bool = "auto"  # auto = on for CUDA GPUs that support it
    num_threads: int = 0  # CPU threads per process; 0 = torch's default

    def __post_init__(self) -> None:
        if self.model_set is None:
            default = ModelSpec()
            object.__setattr__(self, "model_set", frozenset(
                k for k in ModelSpec.keys() if getattr(self.model, k) != getattr(default, k)))
        # YAML/JSON give a list; a tuple keeps the frozen config unchangeable
        object.__setattr__(self, "ae_mask_choices", tuple(float(v) for v in self.ae_mask_choices))
        object.__setattr__(self, "ae_regularisation_choices",
                           _regularisations(self.ae_regularisation_choices))
        self._check()
        given = self.given_model()
        for size in _AUTO_SIZES if self.size == "auto" else (self.size,):
            _model_for(size, given)  # every model this config can resolve to is valid

    def given_model(self) -> dict[str, Any]:
        """The model keys this config states (the size preset never overrides them)."""
        return {k: getattr(self.model, k) for k in sorted(self.model_set or ())}

    def resolved(self, device_type: str) -> TrainConfig:
        """This config with ``size`` applied for a run on ``device_type`` ("cpu", "cuda")."""
        size = self.size if self.size != "auto" else ("full" if device_type == "cuda" else "cpu")
        preset = SIZES[size]
        given = self.given_model()
        filled = {k: v for k, v in preset["model"].items() if k not in given}
        max_genes = preset["max_genes"] if self.max_genes is None else self.max_genes
        if self.size == "auto" and (filled or self.max_genes is None and max_genes):
            log.warning("size: %s on %s (set size: full or the keys to change it): "
                        "max_genes %s, %s", size, device_type, max_genes, filled)
        extra: dict[str, Any] = {}
        train = preset.get("train", {})
        if "transformer_lr" in train and self.transformer.lr == _DEFAULT_LR:  # given wins
            extra["transformer"] = replace(self.transformer, lr=train["transformer_lr"])
        if "joint_context" in train:
            extra["joint_context"] = train["joint_context"]
        return replace(self, size=size, max_genes=max_genes, model=_model_for(size, given),
                       model_set=ModelSpec.keys(), **extra)

    def model_config(self, n_genes: int, esm2_dim: int, **data: Any) -> ModelConfig:
        """The model for this data; ``data``: switches the data decides (no ESM2 file ->
        use_esm2 False, no graph -> use_gcn False)."""
        spec = {k: getattr(self.model, k) for k in ModelSpec.keys()}
        return ModelConfig(**{**spec, **data}, n_genes=n_genes, esm2_dim=esm2_dim,
                           seed=self.seed)

    def ae_regularisations(self) -> list[dict[str, float]]:
        """``ae_regularisation_choices`` as mappings ({} = the run's own settings)."""
        return [dict(c) for c in self.ae_regularisation_choices]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        del d["model_set"]
        d["ae_regularisation_choices"] = self.ae_regularisations()
        return d

    def _check(self) -> None:
        if self.size not in ("auto", *SIZES):
            raise ValueError(f"size must be auto, {' or '.join(SIZES)}; got {self.size!r}")
        if self.max_genes is not None and self.max_genes < 0:
            raise ValueError(f"max_genes must be >= 0, got {self.max_genes}")
        if not 0 < self.mask_fraction < 1:
            raise ValueError(f"mask_fraction must be in (0, 1), got {self.mask_fraction}")
        if any(not 0 < float(v) < 1 for v in self.ae_mask_choices):
            raise ValueError(f"ae_mask_choices must be fractions in (0, 1), got "
                             f"{list(self.ae_mask_choices)}")
        if not 0 <= self.context_extra_mask < 1:
            raise ValueError("context_extra_mask must be in [0, 1), got "
                             f"{self.context_extra_mask}")
        if not 0 <= self.val_fraction + self.test_fraction < 1:
            raise ValueError("val_fraction + test_fraction must be below 1")
        for name in ("ae", "transformer"):
            s = getattr(self, name)
            if s.steps < 0 or s.batch_size < 1 or s.lr <= 0:
                raise ValueError(f"{name}: steps >= 0, batch_size >= 1 and lr > 0 required")
        if self.early_stopping_patience < 0:
            raise ValueError("early_stopping_patience must be >= 0 (0 = off)")
        if self.knn_k < 1 or self.max_reference < 1 or self.embed_pca < 0:
            raise ValueError("knn_k >= 1, max_reference >= 1 and embed_pca >= 0 required")
        if self.checkpoint_every < 1 or self.keep_checkpoints < 1:
            raise ValueError("checkpoint_every and keep_checkpoints must be >= 1")


def from_dict(data: Mapping[str, Any] | None) -> TrainConfig:
    """The ``train:`` section (or a ``bulkfm train --config`` file) -> TrainConfig."""
    data = dict(data or {})
    check_keys(data, KEYS, "train")
    given = dict(data.pop("model", None) or {})
    check_keys(given, ModelSpec.keys(), "train.model")
    for name in ("ae", "transformer"):
        if name in data:
            check_keys(data[name], {f.name for f in fields(StageConfig)}, f"train.{name}")
            stage = {**asdict(getattr(TrainConfig, name)), **(data[name] or {})}
            data[name] = StageConfig(int(stage["steps"]), float(stage["lr"]),
                                     int(stage["batch_size"]))
    # Unresolved, the model is the full size's (ModelSpec's defaults) plus the given keys.
    model = _model_for("full", given) if data.get("size", "auto") == "auto" else (
        _model_for(data["size"], given) if data["size"] in SIZES else ModelSpec())
    return TrainConfig(model=model, model_set=frozenset(given), **data)


def from_workflow(section: Mapping[str, Any]) -> TrainConfig:
    """The workflow's ``train:`` section without the job's own keys (threads, gpu, ...)."""
    return from_dict({k: v for k, v in section.items() if k not in WORKFLOW_KEYS})


def saved_config(train_dir: str | os.PathLike[str]) -> TrainConfig:
    """The config a ``bulkfm train`` directory was trained with (DIR/config.json; defaults
    when it has none). Keys an older bulkfm wrote and no longer reads are left out."""
    path = Path(train_dir) / "config.json"
    if not path.exists():
        return TrainConfig()
    data = dict(json.loads(path.read_text()).get("train") or {})
    data["model"] = {k: v for k, v in (data.get("model") or {}).items()
                     if k in ModelSpec.keys()}
    try:
        return from_dict({k: v for k, v in data.items() if k in KEYS})
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from exc


def load_config(path: str | os.PathLike[str] | None) -> TrainConfig:
    """YAML/JSON file -> TrainConfig. A workflow config with a ``train:`` section works too."""
    if path is None:
        return TrainConfig()
    text = Path(path).read_text()
    data = json.loads(text) if str(path).endswith(".json") else yaml.safe_load(text)
    if isinstance(data, dict) and "train" in data and isinstance(data["train"], dict):
        data = data["train"]
    try:
        return from_dict(data)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from exc


KEYS = frozenset(f.name for f in fields(TrainConfig)) - {"model_set"}
