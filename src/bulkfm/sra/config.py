"""The ``sra:`` block of the workflow config, with defaults, as typed objects."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bulkfm.common.settings import check_keys
from bulkfm.sra.filters import RunFilter
from bulkfm.sra.net import Endpoints, RetryPolicy

DEFAULTS: dict[str, Any] = {
    "human_rnaseq_only": True,
    "taxon_id": 9606,
    "library_strategies": ["RNA-Seq"],
    "library_sources": ["TRANSCRIPTOMIC"],
    "sources": ["ncbi", "ena"],
    "ena_xml": True,
    "xml_batch": 100,
    "ncbi_sleep_s": 0.34,
    "download_method": "auto",
    "threads": 2,
    "retries": 4,
    "backoff_s": 2.0,
    "max_backoff_s": 60.0,
    "timeout_s": 60.0,
    "prefetch_max_size": "200G",
    "keep_fastq": False,
    "endpoints": {},
}


@dataclass(frozen=True)
class SraConfig:
    values: Mapping[str, Any] = field(default_factory=lambda: dict(DEFAULTS))

    @classmethod
    def from_mapping(cls, cfg: Mapping[str, Any] | None) -> SraConfig:
        cfg = dict(cfg or {})
        if "sra" in cfg and isinstance(cfg["sra"], Mapping):  # a whole workflow config
            cfg = dict(cfg["sra"])
        check_keys(cfg, DEFAULTS, "sra")
        Endpoints.from_mapping(cfg.get("endpoints"))  # checked now, not when first used
        return cls({**DEFAULTS, **cfg})

    @classmethod
    def parse(cls, value: str | os.PathLike[str] | None) -> SraConfig:
        """A YAML file path, or the block as JSON text (how the workflow passes it), or None."""
        if value is not None and str(value).lstrip().startswith("{"):
            return cls.from_mapping(json.loads(str(value)))
        return cls.load(value)

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None) -> SraConfig:
        if path is None:
            return cls()
        return cls.from_mapping(yaml.safe_load(Path(path).read_text()) or {})

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    @property
    def endpoints(self) -> Endpoints:
        return Endpoints.from_mapping(self.values.get("endpoints"))

    @property
    def retry(self) -> RetryPolicy:
        v = self.values
        return RetryPolicy(int(v["retries"]), float(v["backoff_s"]), float(v["max_backoff_s"]), float(v["timeout_s"]))

    @property
    def run_filter(self) -> RunFilter | None:
        if not self.values["human_rnaseq_only"]:
            return None
        return RunFilter.from_mapping(self.values)

    def resolve_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :func:`bulkfm.sra.resolve.resolve`."""
        v = self.values
        return {
            "endpoints": self.endpoints,
            "human_rnaseq_only": bool(v["human_rnaseq_only"]),
            "run_filter": self.run_filter,
            "retry": self.retry,
            "sources": tuple(v["sources"]),
            "ncbi_sleep_s": float(v["ncbi_sleep_s"]),
            "ena_xml": bool(v["ena_xml"]),
            "xml_batch": int(v["xml_batch"]),
        }

    def download_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :func:`bulkfm.sra.download.fetch_fastq`."""
        v = self.values
        return {
            "method": v["download_method"],
            "threads": int(v["threads"]),
            "retries": int(v["retries"]),
            "backoff_s": float(v["backoff_s"]),
            "timeout_s": float(v["timeout_s"]),
            "endpoints": self.endpoints,
            "prefetch_max_size": str(v["prefetch_max_size"]),
        }
