"""The ``metadata`` section of the workflow config (or a YAML file holding only that section).

The dataclasses are the only owners of the section's keys and defaults: ``MetadataConfig``'s own
fields, the harmonizer's ``Settings`` (flat in the section) and ``LLMConfig`` (``llm:``). An
unknown key is an error naming its path and the nearest valid name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from bulkfm.common.settings import check_keys

from bulkfm.metadata.llm import LLMConfig
from bulkfm.metadata.ontology import DEFAULT_ONTOLOGIES
from bulkfm.metadata.pipeline import Settings


@dataclass(frozen=True)
class MetadataConfig:
    ontologies: tuple[str, ...] = DEFAULT_ONTOLOGIES
    obo_files: dict[str, str] = field(default_factory=dict)
    cache_dir: str | None = None
    resources: str | None = None
    reviewed: str | None = None
    embedding_threads: int | None = None
    embedding_synonyms: tuple[str, ...] = ("UBERON", "CL", "HsapDv")
    settings: Settings = field(default_factory=Settings)
    llm: LLMConfig = field(default_factory=LLMConfig)


_OWN = {f.name for f in fields(MetadataConfig)} - {"settings"}
_SETTINGS = {f.name for f in fields(Settings)}
KNOWN = _OWN | _SETTINGS  # the keys of the section (``settings`` is not one: its keys are flat)
_TUPLES = ("ontologies", "embedding_synonyms")


def from_dict(data: dict[str, Any] | None) -> MetadataConfig:
    """The section as a mapping -> MetadataConfig; unknown keys refused with their path."""
    data = dict(data or {})
    check_keys(data, KNOWN, "metadata")
    own = {k: data[k] for k in _OWN - {"llm"} if data.get(k) is not None}
    own.update({k: tuple(own[k]) for k in _TUPLES if k in own})
    llm = LLMConfig.from_dict(data.get("llm"))
    if llm.cache is None:  # the LLM answer cache lives beside the index unless set
        llm = replace(llm, cache=own.get("cache_dir"))
    settings = Settings.from_dict({k: data[k] for k in _SETTINGS if k in data})
    return MetadataConfig(**own, settings=settings, llm=llm)


def load_config(path: str | os.PathLike[str] | None) -> MetadataConfig:
    """A YAML file (the section alone, or a workflow config with ``metadata:``) or the section as
    inline JSON text (what the workflow passes) -> MetadataConfig."""
    if not path:
        return from_dict({})
    p = Path(str(path))
    inline = str(path).lstrip().startswith("{")
    if not inline and not p.is_file():
        raise FileNotFoundError(f"config file not found: {p}")
    loaded = (yaml.safe_load(str(path)) if inline else yaml.safe_load(p.read_text())) or {}
    if not isinstance(loaded, dict):
        raise ValueError(f"{p}: expected a mapping")
    return from_dict(loaded.get("metadata") if "metadata" in loaded else loaded)
