"""Helpers for the SLURM tests: the site copy of profiles/slurm, snakemake, sacct."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def site_profile(dest: Path, cluster: dict, **overrides) -> Path:
    """profiles/slurm with what a site adapts: sizes fitted to this one small node, and a short
    first status check (the tests' jobs take seconds, not hours). Everything else as shipped."""
    shipped = REPO / "profiles" / "slurm"
    cfg = yaml.safe_load((shipped / "config.yaml").read_text())
    cpus = min(cluster["cpus"], 2)  # threads per job: the demo's own setting
    cfg["set-threads"] = {rule: min(n, cpus) for rule, n in cfg["set-threads"].items()}
    for res in (cfg.get("set-resources") or {}).values():
        if "cpus_per_task" in res:
            res["cpus_per_task"] = min(res["cpus_per_task"], cpus)
        res["mem_mb"] = "1000 * attempt"
    cfg["default-resources"]["mem_mb"] = "500 * attempt"
    cfg["slurm-init-seconds-before-status-checks"] = 2
    cfg["latency-wait"] = 10
    cfg.update(overrides)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    # the label sizes (the profile's configfile), fitted to the node the same way
    sizes = yaml.safe_load((shipped / cfg["configfile"]).read_text())
    for name, size in sizes["resources"].items():
        if isinstance(size, dict):
            size["mem_mb"] = 1000
    sizes["resources"]["sized_by"] = str(dest / cfg["configfile"])
    (dest / cfg["configfile"]).write_text(yaml.safe_dump(sizes, sort_keys=False))
    return dest


def label_sizes(profile: Path) -> dict:
    """The job-size labels of a profile (its configfile's resources:)."""
    cfg = yaml.safe_load((profile / "config.yaml").read_text())
    return yaml.safe_load((profile / cfg["configfile"]).read_text())["resources"]


def snakemake(*args: str, cwd: Path = REPO, check: bool = True, timeout: int = 600) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("snakemake")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PATH": f"{exe.parent}:{os.environ['PATH']}"}
    proc = subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True, env=env,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


def controller_jobs(since: str, workdir: Path) -> set[str]:
    """Job IDs (array tasks one by one) that the controller holds, submitted at or after `since`
    from `workdir`: its live view, with no accounting lag (completed jobs stay listed for
    MinJobAge = 300 s). The working directory keeps out jobs that anything else on this machine
    submitted meanwhile."""
    out = subprocess.run(["squeue", "-h", "-r", "--states=all", "-o", "%i|%V|%Z"], capture_output=True,
                         text=True, check=True).stdout
    where = os.path.realpath(workdir)
    return {i for i, submitted, wd in (line.split("|", 2) for line in out.splitlines() if line)
            if submitted >= since and os.path.realpath(wd) == where}


def sacct_jobs(since: str, workdir: Path, expect: bool = True, timeout: float = 300) -> list[dict]:
    """Allocations (not steps) submitted from `workdir` since `since` (sacct -S format): id,
    name, state, partition, comment (the plugin's rule_<rule>_wildcards_...), AllocTRES.

    Accounting (slurmdbd) lags the controller, more so on a loaded machine; so this waits for the
    real condition, not for a fixed time: sacct lists every job the controller holds since
    `since`, none of them PENDING/RUNNING. expect=False: no job was submitted at all, checked on
    the controller, which has no lag."""
    if not expect:
        return [{"JobID": i} for i in sorted(controller_jobs(since, workdir))]
    fmt = "JobID,JobName%80,State,Partition,Comment%200,AllocTRES%120,ExitCode,WorkDir%400"
    where = os.path.realpath(workdir)
    end = time.monotonic() + timeout
    while True:
        wanted = controller_jobs(since, workdir)
        out = subprocess.run(["sacct", "-X", "-n", "-P", "-S", since, "-o", fmt],
                             capture_output=True, text=True, check=True).stdout
        rows = [dict(zip(fmt.split(","), line.split("|"))) for line in out.splitlines() if line]
        rows = [{k.split("%")[0]: v for k, v in r.items()} for r in rows]
        rows = [r for r in rows if os.path.realpath(r["WorkDir"]) == where]
        done = rows and wanted <= {r["JobID"] for r in rows}
        if done and all(r["State"] not in ("PENDING", "RUNNING") for r in rows):
            return rows
        if time.monotonic() > end:
            raise AssertionError(f"sacct did not catch up with the controller in {timeout} s: "
                                 f"controller {sorted(wanted)}, sacct {rows}")
        time.sleep(1)  # poll interval only: the loop ends on the condition above


def now_for_sacct() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")
