"""Metadata fixtures: the real ontology index, built once per test session into a temporary
cache directory (so tests never touch the user's cache), and small real-world inputs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def meta_cache(tmp_path_factory) -> Path:
    # BULKFM_TEST_CACHE lets a developer reuse a built index between sessions
    env = os.environ.get("BULKFM_TEST_CACHE")
    path = Path(env) if env else tmp_path_factory.mktemp("bulkfm_cache")
    os.environ["BULKFM_CACHE"] = str(path)  # the CLI subprocesses inherit it
    return path


@pytest.fixture(scope="session")
def index(meta_cache):
    from bulkfm.metadata.ontology import load_index

    return load_index(cache=meta_cache)


@pytest.fixture(scope="session")
def small_embedder(index, meta_cache):
    """The real offline model over a small CL subset (leukocytes + a few others): seconds, not minutes."""
    from bulkfm.metadata.embedding import Embedder

    roots = ("CL:0000738", "CL:0000057", "CL:0000115", "CL:0000066")  # leukocyte, fibroblast, endothelial, epithelial
    ids = {t.id for t in index.terms.values() if t.ontology == "CL" and any(index.is_a(t.id, r) for r in roots)}
    return Embedder(index, meta_cache, restrict={"CL": ids})
