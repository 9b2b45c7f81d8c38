#!/usr/bin/env bash
# Install (scripts/setup.sh) and run the whole test suite: unit tests, real snakemake + salmon
# end to end. Extra arguments go to pytest (e.g. -m "not workflow and not slurm" for the fast
# unit tests).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. "${BULKFM_VENV:-.venv}/bin/activate"
python -m pytest -q --timeout 900 "$@"
