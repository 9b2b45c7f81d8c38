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
    "train": frozenset({"threads", "nproc", "gpu", "mem_mb", "runtime"}),
    "generate": frozenset({"metadata", "mem_mb", "runtime"}),
}


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
