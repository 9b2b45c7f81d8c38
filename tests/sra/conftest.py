"""Fixtures for the sra tests: the 127.0.0.1 replay server and quick retry settings."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sra_replay import ReplayServer, serve

from bulkfm.sra.net import Endpoints, RetryPolicy


@pytest.fixture(scope="session")
def _replay_server(shared_data: Path) -> Iterator[ReplayServer]:
    with serve(shared_data / "sra_metadata_raw") as server:
        yield server


@pytest.fixture
def replay(_replay_server: ReplayServer) -> Iterator[ReplayServer]:
    _replay_server.reset()
    yield _replay_server
    _replay_server.reset()


@pytest.fixture
def endpoints(replay: ReplayServer) -> Endpoints:
    return Endpoints.local(replay.url)


@pytest.fixture
def fast_retry() -> RetryPolicy:
    return RetryPolicy(retries=2, backoff_s=0.01, max_backoff_s=0.05, timeout_s=5)
