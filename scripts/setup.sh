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

# Progress on stderr: a first install takes minutes and pip -q prints nothing meanwhile.
step() { echo "setup: $* ($(( SECONDS - t0 )) s)" >&2; }
t0=$SECONDS
if [ ! -x "$VENV/bin/python" ]; then
  step "creating the virtual environment $VENV"
  python3 -m venv "$VENV"
fi
. "$VENV/bin/activate"
if ! python -c 'import bulkfm, torch, snakemake, multiqc, moto, snakemake_storage_plugin_s3' >/dev/null 2>&1 || [ "${BULKFM_REINSTALL:-0}" = 1 ]; then
  step "1/3 upgrading pip"
  pip install -q -U pip
  step "2/3 installing torch==2.13.0 (CPU wheel, ~200 MB; the longest step)"
  pip install -q torch==2.13.0
  step "3/3 installing bulkfm and its dependencies (snakemake, multiqc, pandas, ...)"
  pip install -q -e ".[test,slurm,cloud]"
  step "installed"
fi
python - <<'PY'
import torch, bulkfm
print(f"setup: bulkfm {bulkfm.__version__}, torch {torch.__version__}")
PY
salmon --version
