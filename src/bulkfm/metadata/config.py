"""The ``metadata`` section of the workflow config (or a YAML file holding only that section)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from bulkfm.common.settings import check_keys

from bulkfm.metadata.llm import LLMConfig
from bulkfm.metadata.ontology import DEFAULT_ONTOLOGIES
from bulkfm.metadata.pipeline import Settings

KNOWN = {"ontologies", "obo_files", "cache_dir", "resources", "reviewed", "llm", "review_threshold",
         "llm_threshold", "embedding", "embedding_min", "candidates", "embedding_ontologies",
         "embedding_threads", "embedding_synonyms"}


@dataclass
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
    raw: dict = field(default_factory=dict)


def load_config(path: str | os.PathLike[str] | None) -> MetadataConfig:
    data: dict = {}
    if path:
        p = Path(str(path))
        inline = str(path).lstrip().startswith("{")  # the workflow passes its section as JSON text
        if not inline and not p.is_file():
            raise FileNotFoundError(f"config file not found: {p}")
        loaded = (yaml.safe_load(str(path)) if inline else yaml.safe_load(p.read_text())) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{p}: expected a mapping")
        data = loaded.get("metadata", loaded) if "metadata" in loaded else loaded
        data = data or {}
    check_keys(data, KNOWN, "metadata")
    cfg = MetadataConfig(
        ontologies=tuple(data.get("ontologies") or DEFAULT_ONTOLOGIES),
        obo_files=dict(data.get("obo_files") or {}),
        cache_dir=data.get("cache_dir"),
        resources=data.get("resources"),
        reviewed=data.get("reviewed"),
        embedding_threads=data.get("embedding_threads"),
        embedding_synonyms=tuple(data.get("embedding_synonyms") or ("UBERON", "CL", "HsapDv")),
        settings=Settings.from_dict(data),
        llm=LLMConfig.from_dict(data.get("llm")),
        raw=data,
    )
    if cfg.llm.cache is None:
        cfg.llm.cache = cfg.cache_dir
    return cfg
