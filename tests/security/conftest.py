"""The security suite reuses the metadata suite's real ontology index fixtures (built once per
session into a temporary cache), so that cached LLM answers are validated against real terms."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "_metadata_fixtures", Path(__file__).resolve().parents[1] / "metadata" / "conftest.py")
_metadata = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_metadata)
meta_cache = _metadata.meta_cache
index = _metadata.index
