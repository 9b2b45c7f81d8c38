"""Bundled metadata resources (key aliases, lexicon, prompt): ``resources/metadata/`` of the
checkout, or a directory named by ``$BULKFM_METADATA_RESOURCES`` / the config."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from bulkfm.metadata.ontology import norm


def resource_dir(override: str | os.PathLike[str] | None = None) -> Path:
    if override:
        return Path(override)
    env = os.environ.get("BULKFM_METADATA_RESOURCES")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "resources" / "metadata"


def read_rows(path: Path) -> list[list[str]]:
    if not path.is_file():
        raise FileNotFoundError(f"metadata resource missing: {path} (set BULKFM_METADATA_RESOURCES)")
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        out.append(line.split("\t"))
    return out


@lru_cache(maxsize=4)
def key_aliases(directory: str | None = None) -> dict[str, tuple[str, float]]:
    """normalised raw key -> (field, weight)."""
    rows = read_rows(resource_dir(directory) / "key_aliases.tsv")
    return {norm(r[0]): (r[1], float(r[2]) if len(r) > 2 else 1.0) for r in rows}


@lru_cache(maxsize=4)
def text_keys(directory: str | None = None) -> frozenset[str]:
    return frozenset(norm(r[0]) for r in read_rows(resource_dir(directory) / "text_keys.tsv"))


@lru_cache(maxsize=4)
def lexicon(directory: str | None = None) -> dict[str, dict[str, tuple[str, str]]]:
    """field -> normalised phrase -> (ontology id, scope 'value'|'any')."""
    out: dict[str, dict[str, tuple[str, str]]] = {}
    for r in read_rows(resource_dir(directory) / "lexicon.tsv"):
        out.setdefault(r[0], {})[norm(r[1])] = (r[2], r[3] if len(r) > 3 else "any")
    return out


def prompt(directory: str | None = None) -> str:
    return (resource_dir(directory) / "llm_prompt.txt").read_text(encoding="utf-8")


@lru_cache(maxsize=4)
def cell_line_disease(directory: str | None = None) -> dict[str, str]:
    """Cellosaurus ID -> disease label ('normal' for lines from healthy donors)."""
    path = resource_dir(directory) / "cell_line_disease.tsv"
    return {r[0]: r[1] for r in read_rows(path)} if path.is_file() else {}


SEXES = ("female", "male")


def cell_line_sex(directory: str | None = None) -> dict[str, str]:
    """Cellosaurus ID -> donor sex ('female' or 'male') of widely used lines; a row with any
    other value is an error naming the row, so a typo cannot pass as a sex."""
    path = resource_dir(directory) / "cell_line_sex.tsv"
    if not path.is_file():
        return {}
    out = {}
    for row in read_rows(path):
        if len(row) != 3 or row[2] not in SEXES:
            raise ValueError(f"{path}: bad row {row!r}: want 'Cellosaurus ID<TAB>name<TAB>female|male'")
        out[row[0]] = row[2]
    return out
