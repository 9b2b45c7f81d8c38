"""Checks every configuration reader shares: unknown keys are refused with their full path and
the nearest valid name, so a typo (``train.transformer.stpes``) never trains with a default."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any


# Keys of a workflow config section that size or steer its job, not the stage's library (the
# rule keeps them; the rest goes to the command). Here, not in the stage modules, so that
# parsing the Snakefile imports no torch.
JOB_KEYS: dict[str, frozenset[str]] = {
    "train": frozenset({"threads", "nproc"}),
    "generate": frozenset({"metadata", "mem_mb", "runtime"}),
}


# Keys that change how a stage works (network patience, parallelism, caches, price estimates),
# never what it writes: left out of the rule params that Snakemake compares, so changing a
# timeout does not rerun quantification and everything downstream.
UNTRACKED: dict[str, frozenset[str]] = {
    "sra": frozenset({"threads", "retries", "backoff_s", "max_backoff_s", "timeout_s",
                      "ncbi_sleep_s", "prefetch_max_size", "keep_fastq", "endpoints",
                      "xml_batch"}),
    "metadata": frozenset({"cache_dir", "embedding_threads"}),
    "metadata.llm": frozenset({"concurrency", "timeout_s", "max_retries", "backoff_s",
                               "price_in_per_1k", "price_out_per_1k", "cache", "api_key_env"}),
}


def tracked(section: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` without the keys of ``section`` (and its nested sections) that change only
    how the stage works: what a rule passes as params, so that only a change of these reruns."""
    drop = UNTRACKED.get(section, frozenset())
    out: dict[str, Any] = {}
    for key, value in (values or {}).items():
        if key in drop:
            continue
        sub = f"{section}.{key}"
        out[key] = tracked(sub, value) if sub in UNTRACKED and isinstance(value, Mapping) else value
    return out


class ConfigKeyError(ValueError):
    """A configuration key that no stage reads."""


def nearest(name: str, valid: Iterable[str]) -> str | None:
    """The valid name closest to ``name`` (difflib ratio >= 0.6), or None."""
    hit = difflib.get_close_matches(str(name), sorted(valid), n=1, cutoff=0.6)
    return hit[0] if hit else None


def check_keys(data: Mapping[str, Any] | None, valid: Iterable[str], path: str) -> None:
    """Raise ConfigKeyError naming every key of ``data`` not in ``valid`` as ``path.key``,
    each with the nearest valid name, and the valid names."""
    valid = set(valid)
    unknown = sorted(str(k) for k in (data or {}) if k not in valid)
    if not unknown:
        return
    parts = []
    for key in unknown:
        near = nearest(key, valid)
        parts.append(f"{path}.{key}" + (f" (did you mean {path}.{near}?)" if near else ""))
    raise ConfigKeyError(f"unknown config key{'s' if len(parts) > 1 else ''} "
                         f"{', '.join(parts)}; valid keys of {path}: {', '.join(sorted(valid))}")
