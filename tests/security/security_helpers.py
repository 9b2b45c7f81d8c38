"""Helpers for the security suite. Hostile names: paths holding command substitution, ';', quotes and
spaces, and a marker file that exists only if one of them was ever run by a shell."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


# The marker's path comes from the environment, so that a name holds no '/' yet names it.
SUBST = '$(touch "$BULKFM_PWNED"); `touch "$BULKFM_PWNED"`'


def hostile(base: Path, stem: str) -> Path:
    """``base/<stem> $(touch "$BULKFM_PWNED"); `...`; x'y"z``: substitutions, ';', quotes, spaces."""
    return base / f"{stem} {SUBST}; x'y\"z"


def snakemake_cmd(*args: str, marker: Path, check: bool = True) -> subprocess.CompletedProcess:
    """Run snakemake in the checkout; a shell that runs a hostile name creates ``marker``."""
    exe = Path(sys.executable).with_name("snakemake")
    proc = subprocess.run([str(exe), *args], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "PYTHONUNBUFFERED": "1", "BULKFM_PWNED": str(marker)})
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc
