"""The demo, run once per test session with real snakemake + salmon into a temporary outdir."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def snakemake(*args: str, cwd: Path = REPO, check: bool = True) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("snakemake")
    proc = subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


@pytest.fixture(scope="session")
def run_snakemake():
    return snakemake


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> Path:
    """Run the default config (the bundled example) end to end; return its outdir."""
    out = tmp_path_factory.mktemp("demo") / "results"
    snakemake("--cores", "2", "--config", f"outdir={out}")
    return out
