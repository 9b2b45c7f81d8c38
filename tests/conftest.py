"""Shared fixtures. ``shared_data`` is the real public test data beside the checkout
(../shared/data, or $BULKFM_SHARED_DATA); users without it skip those tests with a reason."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = Path(os.environ.get("BULKFM_SHARED_DATA", REPO.parent / "shared" / "data"))
    if not path.is_dir():
        pytest.skip(f"real test data not found at {path} (set BULKFM_SHARED_DATA)")
    return path
