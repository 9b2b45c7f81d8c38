#!/usr/bin/env bash
# Run the bundled example end to end (FASTQ -> Salmon -> matrix -> metadata -> model -> report).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. "${BULKFM_VENV:-.venv}/bin/activate"
t0=$SECONDS
if ! snakemake --cores all "$@"; then
  # A lock left by an earlier killed/interrupted run (Snakemake printed the exact step above too).
  if [ -n "$(ls -A .snakemake/locks 2>/dev/null)" ]; then
    echo "demo: a lock is left in .snakemake/locks; if no other snakemake runs here, remove it" \
         "and rerun: snakemake --unlock --cores all $* && bash scripts/demo.sh $*" >&2
  fi
  exit 1
fi
echo "demo: finished in $(( SECONDS - t0 )) s; the summary is results/report/report.md" >&2
