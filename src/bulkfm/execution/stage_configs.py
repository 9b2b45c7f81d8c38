"""Every stage's section of the workflow config, read by that stage's own reader before any job
runs (the Snakefile's ``onstart``): a typo or a bad pair of values in ``train:`` stops the run at
once, not after hours of quantification when the train job first reads it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def check_stage_configs(config: Mapping[str, Any]) -> None:
    """Raise ValueError naming the section and the problem (the readers' own messages)."""
    from bulkfm.generate.train import WORKFLOW_KEYS as GEN_JOB
    from bulkfm.generate.train import GenTrainConfig
    from bulkfm.metadata.config import load_config as metadata_config
    from bulkfm.sra.config import SraConfig
    from bulkfm.train.config import from_workflow as train_config

    def stage(name: str, job: frozenset[str] = frozenset()) -> dict[str, Any]:
        return {k: v for k, v in (config.get(name) or {}).items() if k not in job}

    checks = (
        ("sra", lambda: SraConfig.from_mapping(stage("sra"))),
        ("metadata", lambda: metadata_config(json.dumps(stage("metadata")))),
        ("train", lambda: train_config(config.get("train") or {})),
        ("generate", lambda: GenTrainConfig.from_dict(stage("generate", GEN_JOB))),
    )
    for name, read in checks:
        try:
            read()
        except (ValueError, TypeError) as exc:
            raise ValueError(f"config section {name}: {exc}") from None
