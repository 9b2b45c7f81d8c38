"""generate.smk in the DAG: planned after matrix and metadata, every path quoted."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_generate_all_plans_after_matrix_and_metadata(tmp_path):
    out = tmp_path / "out dir"  # a space: the shell commands must quote every path
    exe = Path(sys.executable).with_name("snakemake")
    proc = subprocess.run([str(exe), "-n", "-p", "--cores", "1", "--config", f"outdir={out}",
                           "--", "generate_all"], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = proc.stdout
    for rule in ("matrix", "metadata_harmonize", "train_generator", "evaluate_generator"):
        assert f"rule {rule}:" in text or f"checkpoint {rule}:" in text, rule
    commands = [line.split("Shell command: ", 1)[-1].strip() for line in text.splitlines()]
    train = next(c for c in commands if c.startswith("bulkfm train-generator"))
    argv = shlex.split(train.split(" > ")[0])
    assert argv[argv.index("--matrix") + 1] == f"{out}/matrix"
    assert argv[argv.index("--out") + 1] == f"{out}/generate"
    assert argv[argv.index("--metadata") + 1] == f"{out}/metadata/harmonized.parquet"
    assert json.loads(argv[argv.index("--config-json") + 1])["max_genes"] == 2000
    evaluate = next(c for c in commands if c.startswith("bulkfm evaluate-generator"))
    assert shlex.split(evaluate.split(" > ")[0])[2] == f"{out}/generate"
