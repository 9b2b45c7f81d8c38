"""No path or config string reaches a shell unquoted (issue 16, item 1).

Every rule's command is checked in a dry run with every optional branch switched on (ESM2,
ARCHS4 import, reviewed file, probe labels, decoy genome...): each hostile path must come out of
the shell's word splitting as one word. Then the demo runs for real with an ``outdir`` and a
sample sheet whose names hold ``$(...)``, backticks, ``;``, quotes and spaces: nothing may run,
and everything the workflow writes must be inside that ``outdir``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import shutil
from pathlib import Path

import pandas as pd
import pytest
from security_helpers import REPO, SUBST, hostile, snakemake_cmd


@pytest.fixture()
def marker(tmp_path) -> Path:
    return tmp_path / "pwned"


SHELL_LINE = re.compile(r"^Shell command: (.*)$", re.M)
JOB_STATS = re.compile(r"^(\w+)\s+\d+$", re.M)


def _commands(proc) -> list[str]:
    return [c for c in SHELL_LINE.findall(proc.stdout + proc.stderr) if c != "None"]  # run: rules


def _planned_rules(proc) -> set[str]:
    text = proc.stdout + proc.stderr
    return set(JOB_STATS.findall(text.split("Job stats:", 1)[1].split("\n\n", 1)[0])) - {"total"}


# bash runs each command with the tools replaced by a function that records its arguments (NUL
# separated) on fd 3: the real word splitting, expansion and redirection, without the tools.
RECORD = ('exec 3>>"$ARGS_OUT"; record() { printf "%s\\0" "$@" >&3; printf "\\n" >&3; }; '
          "bulkfm() { record bulkfm \"$@\"; }; multiqc() { record multiqc \"$@\"; }; "
          "torchrun() { record torchrun \"$@\"; }; python() { record python \"$@\"; }\n")
INTERPRETER = re.compile(r"^\S*/python[0-9.]* ")  # the provenance rule's sys.executable


def _assert_one_word(commands: list[str], out: Path, hostile_words: list[Path | str], marker: Path) -> None:
    """Run every command in bash (tools recorded, not run): nothing may be executed, nothing written
    outside ``out``, and each hostile path / value must arrive as one whole argument."""
    sandbox = out.parent / "sandbox"
    sandbox.mkdir(exist_ok=True)
    for d in ("logs/quant_batch", "logs"):
        (out / d).mkdir(parents=True, exist_ok=True)
    args_out = out.parent / "args.bin"
    env = {**os.environ, "BULKFM_PWNED": str(marker), "ARGS_OUT": str(args_out)}
    for cmd in commands:
        proc = subprocess.run(["bash", "-c", RECORD + INTERPRETER.sub("python ", cmd)], cwd=sandbox, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, (cmd, proc.stderr)
    assert not marker.exists(), "a hostile name was executed by bash"
    assert not os.listdir(sandbox), "a redirection or path escaped outdir"
    calls = [c.split("\0") for c in args_out.read_text().split("\0\n")[:-1]]
    assert len(calls) == len(commands)
    prefixes = tuple(str(p) for p in hostile_words)
    for args in calls:
        for a in args:
            if "BULKFM_PWNED" in a and not a.startswith("{"):  # JSON config values: one argument too
                assert a.startswith(prefixes), f"hostile name split or expanded: {a!r} in {args}"
    shutil.rmtree(out)
    args_out.unlink()


def _sheet(tmp_path: Path) -> Path:
    """The demo's sheet under a hostile name, its FASTQ under a hostile folder (absolute paths)."""
    reads = hostile(tmp_path, "reads")
    reads.mkdir()
    df = pd.read_csv(REPO / "config" / "samples.tsv", sep="\t", dtype=str, keep_default_na=False)
    for col in ("fastq_1", "fastq_2"):
        for p in df[col]:
            if p:
                shutil.copyfile(REPO / p, reads / Path(p).name)
        df[col] = [str(reads / Path(p).name) if p else "" for p in df[col]]
    sheet = Path(str(hostile(tmp_path, "sheet")) + ".tsv")
    df.to_csv(sheet, sep="\t", index=False)
    return sheet


def test_every_rule_quotes_every_path_in_a_dry_run(tmp_path, marker):
    out = hostile(tmp_path, "out")
    files = {name: Path(str(hostile(tmp_path, name)) + ext)
             for name, ext in (("reviewed", ".tsv"), ("labels", ".tsv"), ("genome", ".fa.gz"), ("archs4", ".h5"))}
    for f in files.values():
        f.write_text("")
    sheet = _sheet(tmp_path)
    words = {"libtype": f"A; {SUBST}", "types": f"protein_coding{SUBST}",
             "url": f"http://127.0.0.1:9/p.fa.gz?{SUBST}"}
    every_branch = {
        # a sheet of its own with demo-sized stand-ins, on purpose; the model part on this run's matrix
        "allow_demo_defaults": True,
        "model_data": {"matrix": None, "groups": None},
        "quant": {"reference": {"genome": str(files["genome"]), "gencode": True},
                  "libtype": words["libtype"], "transcript_quant": "plain",
                  "qc": {"check_fastq": False}},
        "sra": {"keep_fastq": True},
        "matrix": {"gene_types": [words["types"]], "renormalize_tpm": False},
        "metadata": {"reviewed": str(files["reviewed"])},
        "graph": {"chunk_genes": 512},
        "embed": {"weights": "esm2_t6_8M_UR50D", "proteins_url": words["url"]},
        "evaluate": {"labels": str(files["labels"])},
        "train": {"nproc": 2},
    }
    cfg = tmp_path / "every_branch.yaml"
    cfg.write_text(json.dumps(every_branch))
    proc = snakemake_cmd("-n", "-p", "--cores", "2", "--configfile", "config/config.yaml", str(cfg),
                         "--config", f"outdir={out}", f"samples={sheet}", marker=marker)
    rules = _planned_rules(proc)
    shell_rules = {"provenance", "salmon_index", "reference_genes", "quant_batch", "quant_qc", "multiqc", "sra_metadata",
                   "matrix", "metadata_harmonize", "metadata_bias", "metadata_impute_sex", "split", "graph",
                   "embed_proteins", "embed", "train", "evaluate", "report"}
    assert shell_rules <= rules, shell_rules - rules
    commands = _commands(proc)
    assert len(commands) >= len(shell_rules)
    _assert_one_word(commands, out, [out, sheet, *files.values(), *words.values()], marker)
    assert any("torchrun" in c for c in commands)  # the nproc > 1 launcher is checked too

    # the ARCHS4 branch of the matrix rule
    cfg.write_text(json.dumps({"allow_demo_defaults": True, "model_data": {"matrix": None, "groups": None},
                              "matrix": {"archs4": str(files["archs4"]), "gene_table": str(files["labels"])}}))
    proc = snakemake_cmd("-n", "-p", "--cores", "2", "--configfile", "config/config.yaml", str(cfg),
                         "--config", f"outdir={out}", f"samples={sheet}", "--", f"{out}/matrix", marker=marker)
    commands = _commands(proc)
    assert any("import-archs4" in c for c in commands)
    _assert_one_word(commands, out, [out, sheet, *files.values()], marker)
    assert not marker.exists()


@pytest.mark.workflow
def test_demo_with_hostile_outdir_and_sheet_runs_nothing_and_stays_inside(tmp_path, marker):
    """The whole demo (every shell rule of the default config) into a hostile outdir."""
    out = hostile(tmp_path, "out")
    sheet = _sheet(tmp_path)
    before = set(os.listdir(tmp_path))
    repo_before = {p for p in os.listdir(REPO)}
    # a copy of the demo's reads under a hostile name: the demo's stand-ins, on purpose
    snakemake_cmd("--cores", "2", "--config", f"outdir={out}", f"samples={sheet}", "allow_demo_defaults=True",
                  marker=marker)
    assert not marker.exists(), "a path was executed by a shell"
    assert set(os.listdir(tmp_path)) - before == {out.name}, "something was written beside outdir"
    assert set(os.listdir(REPO)) - repo_before <= {".snakemake"}  # nothing in the checkout
    # the outputs are complete and where they belong
    assert (out / "report" / "report.md").is_file()
    assert (out / "qc" / "multiqc" / "multiqc_report.html").is_file()
    qc = pd.read_csv(out / "qc" / "qc.tsv", sep="\t")
    assert len(qc) == 4 and (qc["status"] == "pass").all(), qc
    logs = {p.name for p in (out / "logs").rglob("*.log")}
    assert {"salmon_index.log", "train.log", "evaluate.log", "multiqc.log", "b00000.log"} <= logs


def test_cluster_executor_refuses_what_snakemake_cannot_quote(tmp_path, marker):
    """Cluster executors re-launch jobs through a shell line quoted with repr(): stop first."""
    out = hostile(tmp_path, "out")
    proc = snakemake_cmd("--executor", "slurm", "--jobs", "1", "--config", f"outdir={out}", marker=marker,
                         check=False)
    assert proc.returncode != 0
    assert "does not quote safely" in proc.stderr + proc.stdout
    assert not marker.exists() and not out.exists()
