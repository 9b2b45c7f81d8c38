"""Jobs on the real local cluster: GPU rules land on the GPU partition with the (fake) GPU, a job
killed mid-run is resubmitted, a cancelled one is resumed by a rerun, and nothing half-written
survives either."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import pytest
import yaml

from slurm_helpers import label_sizes, now_for_sacct, sacct_jobs, site_profile, snakemake

pytestmark = pytest.mark.slurm

PROBE = Path(__file__).parent / "probe" / "Snakefile"


def probe_profile(dest: Path, cluster: dict, **train_overrides) -> Path:
    profile = site_profile(dest, cluster)
    cfg = yaml.safe_load((profile / "config.yaml").read_text())
    # the shipped GPU settings (the gpu label that train and embed take), on the probe rule
    cfg.setdefault("set-resources", {})["gpu_probe"] = {**label_sizes(profile)["gpu"],
                                                        "cpus_per_task": 1, **train_overrides}
    (profile / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return profile


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 180) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"snakemake ended before {path.name} appeared")
        if time.monotonic() > end:
            raise AssertionError(f"{path.name} did not appear in {timeout} s")
        time.sleep(0.5)


def stop_and_release(proc: subprocess.Popen, workdir: Path, timeout: float = 120) -> bool:
    """Wait for the real condition a rerun needs, not for a fixed time: the interrupted snakemake
    has exited (its Ctrl-C path scancels the jobs left, which takes long on a loaded machine) and
    its lock files under .snakemake/locks are gone.

    Snakemake itself sometimes never exits after Ctrl-C (seen 2 and 4 Dec: it logged "Will exit
    after finishing currently running jobs (scheduler)", not "Terminating processes on user
    request", and then waited on a lock for good, SIGTERM included; the same test passes when
    rerun). Then this does what its user would: kill it, scancel what is left, `snakemake
    --unlock`, and warn, so the rest of the test (the rerun resumes) still runs and can fail."""
    for sig in (None, signal.SIGTERM):
        if sig is not None:
            proc.send_signal(sig)  # Snakemake's own graceful path: executor cancel, lock released
        try:
            proc.wait(timeout=timeout)
            break
        except subprocess.TimeoutExpired:
            continue
    else:
        proc.kill()
        proc.wait()
        left = subprocess.run(["squeue", "-h", "-o", "%i|%k"], capture_output=True,
                              text=True).stdout.split()
        ids = [line.split("|")[0] for line in left if line.split("|")[-1].startswith("rule_")]
        if ids:
            subprocess.run(["scancel", *ids], check=False)
        snakemake("--unlock", cwd=workdir)
        warnings.warn("snakemake did not exit after Ctrl-C and SIGTERM (upstream hang): killed, "
                      f"scancelled {ids} and unlocked", stacklevel=2)
    locks = workdir / ".snakemake" / "locks"
    return not (locks.exists() and any(locks.iterdir()))


def slurm_id(rule: str) -> str:
    out = subprocess.run(["squeue", "-h", "-o", "%i|%k"], capture_output=True, text=True, check=True).stdout
    ids = [line.split("|")[0] for line in out.splitlines() if line.split("|")[1] == f"rule_{rule}"]
    assert len(ids) == 1, out
    return ids[0]


def test_gpu_routing_kill_and_cancel(slurm_cluster, tmp_path):
    work = tmp_path / "probe"
    work.mkdir()
    shutil.copy(PROBE, work / "Snakefile")
    profile = probe_profile(tmp_path / "profile", slurm_cluster)
    (work / "hold_killed").touch()
    (work / "hold_cancelled").touch()
    since = now_for_sacct()
    exe = Path(sys.executable).with_name("snakemake")
    env = {**os.environ, "PATH": f"{exe.parent}:{os.environ['PATH']}"}
    run_a = subprocess.Popen([str(exe), "--profile", str(profile)], cwd=work, env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(run_a.stdout), daemon=True)
    reader.start()
    try:
        wait_for(work / "started.killed", run_a)
        wait_for(work / "started.cancelled", run_a)
        # Killed mid-write (what an OOM kill or a node problem does): SLURM records FAILED and the
        # plugin resubmits with attempt 2.
        subprocess.run(["scancel", "--signal=KILL", "--batch", slurm_id("killed_write")], check=True)
        # Cancelled by the user: the job is gone; the workflow is stopped and rerun.
        subprocess.run(["scancel", slurm_id("cancelled_write")], check=True)
        end = time.monotonic() + 240
        # until snakemake has registered both jobs as finished (else Ctrl-C discards them)
        while not all(f"(Rule: {r})" in "".join(lines) for r in ("killed_write", "gpu_probe")):
            assert time.monotonic() < end and run_a.poll() is None, "".join(lines)[-4000:]
            time.sleep(1)
    finally:
        run_a.send_signal(signal.SIGINT)  # Ctrl-C: snakemake cancels what is left and stops
        stopped = stop_and_release(run_a, work)

    reader.join(timeout=120)  # stdout closes once snakemake has exited
    log_a = "".join(lines)
    assert stopped, f"the interrupted snakemake did not exit and release its lock:\n{log_a[-4000:]}"
    assert "FAILED" in log_a  # the killed attempt, reported as such
    assert _read(work / "gpu.txt").split() == ["partition=gpu", "cuda=0"]
    assert _read(work / "killed.txt").splitlines() == ["attempt 2 started", "attempt 2 done"]

    # Rerun: only the cancelled job runs again, from an empty file.
    (work / "hold_cancelled").unlink()
    proc = snakemake("--profile", str(profile), cwd=work)
    assert "rule cancelled_write" in proc.stdout + proc.stderr
    assert "rule killed_write" not in proc.stdout + proc.stderr
    assert _read(work / "cancelled.txt").splitlines() == ["started", "done"]

    jobs = sacct_jobs(since, work)
    by_rule: dict[str, list[str]] = {}
    for r in jobs:
        by_rule.setdefault(r["Comment"].removeprefix("rule_"), []).append(r["State"])
    assert by_rule["killed_write"] == ["FAILED", "COMPLETED"], jobs
    assert by_rule["cancelled_write"][0].startswith("CANCELLED") and by_rule["cancelled_write"][-1] == "COMPLETED"
    gpu = [r for r in jobs if r["Comment"] == "rule_gpu_probe"]
    assert [r["Partition"] for r in gpu] == ["gpu"] and "gres/gpu" in gpu[0]["AllocTRES"], gpu


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def test_bad_partition_fails_before_any_sbatch(slurm_cluster, tmp_path):
    """The Snakefile's onstart pre-flight: a GPU rule on a partition that does not exist stops the
    run at once, naming the rule and the profile key; nothing is submitted."""
    work = tmp_path / "probe"
    work.mkdir()
    shutil.copy(PROBE, work / "Snakefile")
    profile = probe_profile(tmp_path / "profile", slurm_cluster, slurm_partition="gpu-a100", gpu_model="a100")
    since = now_for_sacct()
    t0 = time.monotonic()
    proc = snakemake("--profile", str(profile), cwd=work, check=False, timeout=120)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert time.monotonic() - t0 < 60
    assert "rule gpu_probe: partition 'gpu-a100' does not exist on this cluster" in text, text[-3000:]
    assert "set-resources: gpu_probe: slurm_partition" in text
    assert "has been submitted" not in text
    assert sacct_jobs(since, work, expect=False) == []


def test_wrong_gpu_type_named(slurm_cluster, tmp_path):
    work = tmp_path / "probe"
    work.mkdir()
    shutil.copy(PROBE, work / "Snakefile")
    profile = probe_profile(tmp_path / "profile", slurm_cluster, gpu_model="h100")
    proc = snakemake("--profile", str(profile), cwd=work, check=False, timeout=120)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "rule gpu_probe: GPU type 'h100' is not on partition 'gpu' (types: fake)" in text, text[-3000:]
