"""Each stage's settings have one owner, the library's config class: the workflow's schema
names exactly its keys (plus the keys that size the job), config.yaml states its defaults, and
a misspelt key anywhere is refused with its path and the nearest valid name."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from bulkfm.common.settings import UNTRACKED, ConfigKeyError, check_keys
from bulkfm.generate.model import GeneratorConfig
from bulkfm.generate.train import WORKFLOW_KEYS as GENERATE_JOB
from bulkfm.generate.train import GenTrainConfig
from bulkfm.metadata.config import KNOWN as METADATA_KEYS
from bulkfm.metadata.config import from_dict as metadata_from_dict
from bulkfm.metadata.config import load_config as load_metadata
from bulkfm.metadata.llm import LLMConfig
from bulkfm.metadata.pipeline import Settings as MetadataSettings
from bulkfm.model.config import ModelConfig, ModelSpec
from bulkfm.sra.config import DEFAULTS as SRA_DEFAULTS
from bulkfm.sra.config import SraConfig
from bulkfm.train.config import KEYS as TRAIN_KEYS
from bulkfm.train.config import WORKFLOW_KEYS as TRAIN_JOB
from bulkfm.train.config import TrainConfig
from bulkfm.train.config import from_dict as train_from_dict

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())["properties"]
CONFIG = yaml.safe_load((ROOT / "config/config.yaml").read_text())


def _fields(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def _plain(value):
    if dataclasses.is_dataclass(value):
        return {k: _plain(v) for k, v in dataclasses.asdict(value).items()}
    return list(value) if isinstance(value, tuple) else value


# The one deliberate difference: the workflow's config sizes training for the 2-core demo (about
# a minute per stage); `bulkfm train` on its own trains to its defaults with early stopping.
DEMO_SIZED_TRAIN = {"max_genes", "ae", "transformer", "warmup_steps", "checkpoint_every",
                    "eval_every"}
DEMO_SIZED_MODEL = {"n_layers"}

OWNERS = {
    "sra": (set(SRA_DEFAULTS), set()),
    "train": (set(TRAIN_KEYS) - {"esm2", "graph"}, set(TRAIN_JOB)),  # paths: rule inputs
    "metadata": (set(METADATA_KEYS), set()),
    "generate": (_fields(GenTrainConfig), set(GENERATE_JOB)),
}


@pytest.mark.parametrize("section", sorted(OWNERS))
def test_the_schema_names_exactly_the_owners_keys(section):
    library, job = OWNERS[section]
    assert set(SCHEMA[section]["properties"]) == library | job


def test_the_model_keys_of_the_schema_are_model_config_fields():
    assert set(SCHEMA["train"]["properties"]["model"]["properties"]) == set(ModelSpec.keys())
    assert set(ModelSpec.keys()) < _fields(ModelConfig)  # plus what the data decides
    assert set(SCHEMA["metadata"]["properties"]["llm"]["properties"]) <= _fields(LLMConfig)
    assert set(SCHEMA["generate"]["properties"]["model"].get("properties", {})) <= _fields(
        GeneratorConfig)


def test_config_yaml_states_the_library_defaults():
    sra = CONFIG["sra"]
    assert {k: sra[k] for k in SRA_DEFAULTS if k != "endpoints"} == {
        k: v for k, v in SRA_DEFAULTS.items() if k != "endpoints"}
    train = TrainConfig().to_dict()  # the YAML form (ae_regularisation_choices: mappings)
    for key, value in CONFIG["train"].items():
        if key in TRAIN_JOB or key == "model" or key in DEMO_SIZED_TRAIN:
            continue
        assert _plain(train[key]) == value, f"train.{key}"
    # The demo's model is the cpu size's (what `size: auto` gives on a CPU), one block less.
    cpu = train_from_dict({"size": "cpu"}).model
    for key, value in CONFIG["train"]["model"].items():
        if key not in DEMO_SIZED_MODEL:
            assert _plain(getattr(cpu, key)) == value, f"train.model.{key}"
    gen = GenTrainConfig()
    for key, value in CONFIG["generate"].items():
        if key in GENERATE_JOB or key == "model":
            continue
        assert _plain(getattr(gen, key)) == value, f"generate.{key}"
    for key, value in (CONFIG["generate"].get("model") or {}).items():
        assert _plain(getattr(gen.model, key)) == value, f"generate.model.{key}"
    md = load_metadata(None)
    settings = md.settings
    for key, value in CONFIG["metadata"].items():
        if key in ("llm", "obo_files", "ontologies"):
            continue
        owner = settings if key in _fields(type(settings)) else md
        assert _plain(getattr(owner, key)) == value, f"metadata.{key}"


@pytest.mark.parametrize("read,data,message", [
    (train_from_dict, {"transformer": {"stpes": 10}}, r"train\.transformer\.stpes \(did you mean train\.transformer\.steps\?\)"),
    (train_from_dict, {"model": {"n_layer": 2}}, r"train\.model\.n_layer \(did you mean train\.model\.n_layers\?\)"),
    (train_from_dict, {"mask_fracton": 0.2}, r"train\.mask_fracton \(did you mean train\.mask_fraction\?\)"),
    (SraConfig.from_mapping, {"timeout": 3}, r"sra\.timeout \(did you mean sra\.timeout_s\?\)"),
    (GenTrainConfig.from_dict, {"model": {"latnt": 8}}, r"generate\.model\.latnt \(did you mean generate\.model\.latent\?\)"),
    (LLMConfig.from_dict, {"base_ur": "http://x"}, r"metadata\.llm\.base_ur \(did you mean metadata\.llm\.base_url\?\)"),
    (metadata_from_dict, {"review_treshold": 0.5}, r"metadata\.review_treshold \(did you mean metadata\.review_threshold\?\)"),
    (metadata_from_dict, {"llm": {"modle": "x"}}, r"metadata\.llm\.modle \(did you mean metadata\.llm\.model\?\)"),
    (MetadataSettings.from_dict, {"candidate": 3}, r"metadata\.candidate \(did you mean metadata\.candidates\?\)"),
])
def test_a_misspelt_key_is_named_with_its_path_and_the_fix(read, data, message):
    with pytest.raises(ConfigKeyError, match=message):
        read(data)


def test_unrelated_keys_get_no_suggestion_but_the_valid_list():
    with pytest.raises(ConfigKeyError) as exc:
        check_keys({"zzz": 1}, {"steps", "lr"}, "train.ae")
    assert "did you mean" not in str(exc.value) and "valid keys of train.ae: lr, steps" in str(exc.value)


def test_no_rule_sizes_a_job_with_a_literal_number():
    literal = re.compile(r"^\s*(mem_mb|runtime)\s*=\s*[\d(]", re.M)
    for smk in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        assert not literal.findall(smk.read_text()), f"{smk.name}: use job_size(label)"
    assert set(CONFIG["resources"]) == set(SCHEMA["resources"]["properties"])


def test_tracked_drops_only_the_keys_that_change_how_not_what():
    from bulkfm.common.settings import tracked

    sra = tracked("sra", {"timeout_s": 5, "retries": 2, "taxon_id": 9606, "endpoints": {"x": 1}})
    assert sra == {"taxon_id": 9606}
    md = tracked("metadata", {"cache_dir": "/c", "review_threshold": 0.6,
                              "llm": {"timeout_s": 9, "model": "m", "max_calls": 5}})
    assert md == {"review_threshold": 0.6, "llm": {"model": "m", "max_calls": 5}}
    assert set(UNTRACKED["sra"]) <= set(SRA_DEFAULTS)  # no stale names


def test_a_cluster_run_with_the_demo_sizes_stops_naming_the_fix():
    from bulkfm.execution.defaults import check_label_sizes

    assert CONFIG["resources"]["sized_by"] == "config/config.yaml"
    check_label_sizes(CONFIG, "local")  # a local run may use the config's own sizes
    for name in ("slurm", "kubernetes"):
        profile = ROOT / "profiles" / name
        sizes = yaml.safe_load((profile / "resources.yaml").read_text())
        check_label_sizes({"resources": {**CONFIG["resources"], **sizes["resources"]}}, name)
        with pytest.raises(ValueError, match=rf"--configfile profiles/{name}/resources.yaml YOUR.yaml"):
            check_label_sizes(CONFIG, name)
