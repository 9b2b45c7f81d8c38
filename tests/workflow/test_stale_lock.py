"""A Snakemake killed mid-run leaves its lock; the next run of this workflow names the exact
`snakemake --unlock ...` command (built from the user's own command line), and that command
followed by the rerun finishes the work. While the first run is alive it is named instead."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.workflow
SNAKEFILE = """
import os, sys
from bulkfm.execution.locks import unlock_hint

if _msg := unlock_hint(os.getcwd(), sys.argv):
    print(_msg, file=sys.stderr)

rule all:
    output: "done.txt"
    shell: "touch started; while [ -e hold ]; do sleep 0.2; done; touch {output}"
"""


def _snakemake(work: Path, *args: str, **kw) -> subprocess.CompletedProcess:  # type: ignore[no-untyped-def]
    exe = Path(sys.executable).with_name("snakemake")
    return subprocess.run([str(exe), *args], cwd=work, capture_output=True, text=True, timeout=300, **kw)


def _until(cond, proc: subprocess.Popen, what: str, timeout: float = 300) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while not cond():
        assert proc.poll() is None, f"snakemake ended before {what}: {proc.communicate()}"
        assert time.monotonic() < end, f"no {what} after {timeout} s"
        time.sleep(0.2)  # poll interval; the loop ends on the condition


def test_killed_run_names_the_exact_unlock_step(tmp_path: Path) -> None:
    work = tmp_path / "wf"
    work.mkdir()
    (work / "Snakefile").write_text(SNAKEFILE)
    (work / "hold").touch()
    args = ["--cores", "1", "--config", "outdir=my results"]
    exe = Path(sys.executable).with_name("snakemake")
    first = subprocess.Popen([str(exe), *args], cwd=work, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _until(lambda: (work / "started").exists(), first, "started job")
        busy = _snakemake(work, *args)
        assert busy.returncode != 0
        assert f"held by a running Snakemake (pid {first.pid})" in busy.stderr, busy.stderr[-2000:]
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # what an OOM kill or a closed terminal does
        first.wait()
    (work / "hold").unlink()

    rerun = _snakemake(work, *args)
    assert rerun.returncode != 0 and "LockException" in rerun.stderr
    unlock = "snakemake --unlock --cores 1 --config 'outdir=my results'"
    assert "stale lock from a killed or interrupted Snakemake" in rerun.stderr
    assert f"\n    {unlock}\n    snakemake --cores 1 --config 'outdir=my results'" in rerun.stderr

    # The printed step works as printed.
    assert subprocess.run(unlock.replace("snakemake", str(exe), 1), shell=True, cwd=work).returncode == 0
    done = _snakemake(work, *args)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (work / "done.txt").exists() and "stale lock" not in done.stderr
