#!/usr/bin/env bash
# Install what bulkfm needs on a fresh Debian/Ubuntu machine: Salmon + sra-tools (apt, when
# missing) and a virtual environment with the package. torch==2.13.0 goes in first so that
# nothing resolves `torch` to the multi-GB CUDA build. Idempotent: a second run is quick.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${BULKFM_VENV:-.venv}

need_apt=()
command -v salmon >/dev/null 2>&1 || need_apt+=(salmon)
command -v fasterq-dump >/dev/null 2>&1 || need_apt+=(sra-toolkit)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing ${need_apt[*]}; install them (apt-get install ${need_apt[*]}, or conda" \
         "envs/salmon.yaml) or rerun as root" >&2
    exit 1
  fi
  echo "setup: apt-get install ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
. "$VENV/bin/activate"
if ! python -c 'import bulkfm, torch, snakemake, multiqc, moto, snakemake_storage_plugin_s3' >/dev/null 2>&1 || [ "${BULKFM_REINSTALL:-0}" = 1 ]; then
  pip install -q -U pip
  pip install -q torch==2.13.0
  pip install -q -e ".[test,slurm,cloud]"
fi
python - <<'PY'
import torch, bulkfm
print(f"setup: bulkfm {bulkfm.__version__}, torch {torch.__version__}")
PY
salmon --version
