"""What a SLURM cluster offers, read from its own tools (sinfo, scontrol, sacct, sacctmgr).

Only what the pre-flight check needs: partitions with their largest node (CPUs, memory, GPUs by
type), whether accounting (sacct) answers, MinJobAge, and the user's accounts.
"""

from __future__ import annotations

import getpass
import re
import shutil
import subprocess
from dataclasses import dataclass, field

TIMEOUT_S = 30


class SlurmUnavailable(RuntimeError):
    """The SLURM client tools are missing or the controller does not answer."""


@dataclass(frozen=True)
class Partition:
    name: str
    default: bool
    up: bool
    cpus: int  # largest node
    mem_mb: int  # largest node
    gpus: dict[str, int] = field(default_factory=dict)  # GPU type ("" = untyped) -> per node

    @property
    def max_gpus(self) -> int:
        return max(self.gpus.values(), default=0)


@dataclass(frozen=True)
class Cluster:
    partitions: dict[str, Partition]
    sacct_error: str | None  # None: sacct works
    min_job_age_s: int | None
    accounts: frozenset[str] | None  # None: unknown (no accounting)

    @property
    def default_partition(self) -> str | None:
        return next((p.name for p in self.partitions.values() if p.default), None)


def _run(*cmd: str) -> subprocess.CompletedProcess:
    if shutil.which(cmd[0]) is None:
        raise SlurmUnavailable(f"'{cmd[0]}' not found: the SLURM client tools are not on PATH here")
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        raise SlurmUnavailable(f"'{' '.join(cmd)}' did not answer in {TIMEOUT_S} s") from exc


def parse_gres(gres: str) -> dict[str, int]:
    """sinfo %G ("gpu:a100:4(S:0-1),gpu:2", "(null)") -> {type: count} for GPUs."""
    out: dict[str, int] = {}
    for item in gres.split(","):
        item = re.sub(r"\(.*?\)", "", item).strip()
        parts = item.split(":")
        if parts[0] != "gpu" or len(parts) < 2:
            continue
        count = re.match(r"\d+", parts[-1])
        if not count:
            continue
        gtype = parts[1] if len(parts) == 3 else ""
        out[gtype] = max(out.get(gtype, 0), int(count.group()))
    return out


def parse_sinfo(text: str) -> dict[str, Partition]:
    """Lines of `sinfo -h -o '%P|%a|%c|%m|%G'` (one per partition and node shape) -> partitions."""
    parts: dict[str, Partition] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        name, avail, cpus, mem, gres = line.split("|")
        default = name.endswith("*")
        name = name.rstrip("*")
        cpus_i = int(re.match(r"\d+", cpus).group())
        mem_i = int(re.match(r"\d+", mem).group())
        gpus = parse_gres(gres)
        old = parts.get(name)
        if old is not None:  # several node shapes: keep the largest of each
            for t, n in old.gpus.items():
                gpus[t] = max(gpus.get(t, 0), n)
            cpus_i, mem_i = max(cpus_i, old.cpus), max(mem_i, old.mem_mb)
            default = default or old.default
        parts[name] = Partition(name, default, avail == "up", cpus_i, mem_i, gpus)
    return parts


def query_cluster() -> Cluster:
    ping = _run("scontrol", "ping")
    if ping.returncode != 0 or "DOWN" in ping.stdout:
        raise SlurmUnavailable(f"the SLURM controller does not answer: {(ping.stdout + ping.stderr).strip()}")
    sinfo = _run("sinfo", "-h", "-o", "%P|%a|%c|%m|%G")
    if sinfo.returncode != 0:
        raise SlurmUnavailable(f"sinfo failed: {sinfo.stderr.strip()}")
    partitions = parse_sinfo(sinfo.stdout)

    sacct_error: str | None
    if shutil.which("sacct") is None:
        sacct_error = "'sacct' is not installed"
    else:
        sacct = _run("sacct", "-n", "-X", "-S", "now", "-o", "JobID")
        sacct_error = None if sacct.returncode == 0 else (sacct.stderr.strip() or f"exit {sacct.returncode}")

    config = _run("scontrol", "show", "config").stdout
    age = re.search(r"^MinJobAge\s*=\s*(\d+)", config, re.M)

    accounts = None
    if sacct_error is None and shutil.which("sacctmgr"):
        assoc = _run("sacctmgr", "-n", "-P", "show", "assoc", f"user={getpass.getuser()}", "format=account")
        if assoc.returncode == 0:
            accounts = frozenset(a.strip() for a in assoc.stdout.split() if a.strip())
    return Cluster(partitions, sacct_error, int(age.group(1)) if age else None, accounts)
