#!/usr/bin/env bash
# Run the bundled example end to end (FASTQ -> Salmon -> matrix -> metadata -> model -> report).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. "${BULKFM_VENV:-.venv}/bin/activate"
snakemake --cores all "$@"
