"""Pre-flight check of SLURM requests against the cluster: fail fast with the rule and the
setting to change, instead of a job that pends forever or a run that hangs.

What goes wrong on a real cluster, and how the plain run behaves without this check:
- a partition that does not exist or is down: sbatch refuses (a fast but cryptic error);
- a GPU (or GPU type) the partition's nodes do not have: sbatch refuses "Invalid generic resource";
- more CPUs/memory than any node has: PENDING forever unless the site sets EnforcePartLimits;
- an account the user has no association with: sbatch refuses;
- sacct unavailable (no slurmdbd) while the plugin uses it: the run hangs silently.

Requests come from a running workflow (``check_snakemake_workflow``, from the Snakefile's
``onstart``) or from the profile alone (``requests_from_profile``, for ``bulkfm slurm-check``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bulkfm.execution.slurm_cluster import Cluster, SlurmUnavailable, query_cluster

DEFAULT = "(all rules)"


@dataclass
class Request:
    """What one rule asks SLURM for (the first attempt; retries scale memory/time up)."""

    rule: str
    partition: str | None = None
    account: str | None = None
    cpus: int | None = None
    mem_mb: int | None = None
    gpus: int = 0
    gpu_model: str | None = None
    where: dict[str, str] = field(default_factory=dict)  # resource -> the setting that sets it

    def key(self, resource: str) -> str:
        return self.where.get(resource, f"set-resources: {self.rule}: {resource}")


class PreflightError(Exception):
    """One or more requests cannot run on this cluster; the message lists each with its fix."""


# ---------------------------------------------------------------- the check (pure)


def check(requests: Iterable[Request], cluster: Cluster, status_command: str | None = "sacct",
          init_seconds: int | None = None) -> list[str]:
    """Problems (one sentence each, naming rule + setting + fix); [] when all can run."""
    problems: list[str] = []
    names = sorted(cluster.partitions)
    gpu_parts = sorted(p.name for p in cluster.partitions.values() if p.max_gpus)
    for r in requests:
        pname = r.partition or cluster.default_partition
        part = cluster.partitions.get(pname) if pname else None
        if pname is None:
            problems.append(f"rule {r.rule}: no slurm_partition set and the cluster has no default "
                            f"partition; set default-resources: slurm_partition (one of {names})")
            continue
        if part is None:
            problems.append(f"rule {r.rule}: partition '{pname}' does not exist on this cluster "
                            f"(partitions: {', '.join(names)}); change {r.key('slurm_partition')}")
            continue
        if not part.up:
            problems.append(f"rule {r.rule}: partition '{pname}' is not up; change {r.key('slurm_partition')}")
        if r.gpus:
            if not part.max_gpus:
                where = (f"GPU partitions here: {', '.join(gpu_parts)}" if gpu_parts
                         else "this cluster declares no GPU (gres gpu) at all")
                problems.append(f"rule {r.rule}: asks for {r.gpus} GPU(s) but partition '{pname}' has no "
                                f"GPU nodes ({where}); change {r.key('slurm_partition')} or set "
                                f"{r.key('gpu')} to 0 (and the rule's device to cpu)")
            elif r.gpu_model and r.gpu_model not in part.gpus:
                typed = sorted(t for t in part.gpus if t) or ["untyped only"]
                problems.append(f"rule {r.rule}: GPU type '{r.gpu_model}' is not on partition '{pname}' "
                                f"(types: {', '.join(typed)}); change {r.key('gpu_model')}")
            else:
                have = part.gpus.get(r.gpu_model, 0) if r.gpu_model else part.max_gpus
                if r.gpus > have:
                    problems.append(f"rule {r.rule}: asks for {r.gpus} GPUs, the nodes of '{pname}' have "
                                    f"at most {have}; lower {r.key('gpu')} (train across nodes instead)")
        if r.cpus and r.cpus > part.cpus:
            problems.append(f"rule {r.rule}: asks for {r.cpus} CPUs, the largest node of '{pname}' has "
                            f"{part.cpus}; lower {r.key('cpus_per_task')} (and set-threads: {r.rule})")
        if r.mem_mb and r.mem_mb > part.mem_mb:
            problems.append(f"rule {r.rule}: asks for {r.mem_mb} MB, the largest node of '{pname}' has "
                            f"{part.mem_mb} MB; lower {r.key('mem_mb')} or use a bigger partition")
        if r.account and cluster.accounts is not None and r.account not in cluster.accounts:
            problems.append(f"rule {r.rule}: account '{r.account}' is not one of your SLURM accounts "
                            f"({', '.join(sorted(cluster.accounts)) or 'none'}); change {r.key('slurm_account')}")
    if (status_command or "sacct") == "sacct" and cluster.sacct_error:
        problems.append(f"job status: sacct is unavailable ({cluster.sacct_error}); the slurm plugin "
                        "would lose track of its jobs and wait forever. Set `slurm-status-command: squeue` "
                        "in the profile (or start slurmdbd)")
    if status_command == "squeue" and cluster.min_job_age_s is not None and init_seconds:
        if cluster.min_job_age_s < 3 * init_seconds:
            problems.append(f"job status: squeue forgets finished jobs after MinJobAge={cluster.min_job_age_s} s, "
                            f"less than 3 x slurm-init-seconds-before-status-checks ({init_seconds}); lower "
                            "that profile key or use sacct")
    # one message per distinct problem (many jobs of a rule share it)
    return list(dict.fromkeys(problems))


def require(requests: Iterable[Request], cluster: Cluster, status_command: str | None = "sacct",
            init_seconds: int | None = None, source: str = "the profile") -> None:
    problems = check(requests, cluster, status_command, init_seconds)
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise PreflightError(f"SLURM pre-flight check of {source} failed:\n{lines}")


# ---------------------------------------------------------------- requests from a profile file


def _as_int(value: Any) -> int | None:
    """A resource value: an int, or an expression of `attempt` (first attempt: 1)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return int(value)
    try:
        return int(eval(str(value), {"__builtins__": {"min": min, "max": max}}, {"attempt": 1}))
    except Exception:  # an expression of input sizes etc.: not known before the DAG
        return None


def _kv_list(items: Any, sep: str = "=") -> dict[str, Any]:
    if isinstance(items, Mapping):
        return dict(items)
    out: dict[str, Any] = {}
    for item in items or []:
        k, _, v = str(item).partition(sep)
        out[k.strip()] = v.strip()
    return out


def _set_resources(items: Any) -> dict[str, dict[str, Any]]:
    if isinstance(items, Mapping):
        return {rule: dict(res) for rule, res in items.items()}
    out: dict[str, dict[str, Any]] = {}
    for item in items or []:  # "rule:key=value"
        rule, _, kv = str(item).partition(":")
        k, _, v = kv.partition("=")
        out.setdefault(rule.strip(), {})[k.strip()] = v.strip()
    return out


def _gpus(res: Mapping[str, Any]) -> tuple[int, str | None]:
    model = res.get("gpu_model") or None
    if res.get("gpu") not in (None, "", 0, "0"):
        return _as_int(res.get("gpu")) or 0, model
    gres = str(res.get("gres") or "")
    m = re.match(r"gpu(?::([A-Za-z0-9_.-]+))?:(\d+)", gres)
    if m:
        return int(m.group(2)), m.group(1) or model
    return 0, model


def _request(rule: str, res: Mapping[str, Any], threads: int | None, where: dict[str, str]) -> Request:
    gpus, model = _gpus(res)
    cpus = _as_int(res.get("cpus_per_task")) or threads
    return Request(rule=rule, partition=res.get("slurm_partition") or None,
                   account=(str(res["slurm_account"]) if res.get("slurm_account") else None),
                   cpus=cpus, mem_mb=_as_int(res.get("mem_mb")), gpus=gpus, gpu_model=model, where=where)


@dataclass(frozen=True)
class ProfileSettings:
    requests: list[Request]
    status_command: str | None
    init_seconds: int | None


def _profile_labels(cfg: Mapping[str, Any], folder: Path) -> dict[str, tuple[dict[str, Any], Path]]:
    """The job-size labels (``resources:``) of the config files the profile reads (``configfile:``,
    relative to the profile as Snakemake resolves them): label -> (its keys, the file)."""
    files = cfg.get("configfile") or cfg.get("configfiles") or []
    labels: dict[str, tuple[dict[str, Any], Path]] = {}
    for name in [files] if isinstance(files, str) else files:
        file = folder / str(name) if (folder / str(name)).exists() else Path(str(name))
        sizes = (yaml.safe_load(file.read_text()) or {}).get("resources") or {}
        labels.update({k: (dict(v), file) for k, v in sizes.items() if isinstance(v, Mapping)})
    return labels


def label_rule(label: str) -> str:
    """The name a label's request goes by in the check's messages."""
    return f"{label} (resources label)"


def requests_from_profile(profile: str | Path) -> ProfileSettings:
    """Requests as a profile states them: default-resources merged with each job-size label of
    the profile's config file (memory, partition, GPUs) and with set-resources and set-threads of
    each rule it names (CPUs, against the default partition: which label a rule takes is the
    workflow's; the workflow's own check at start sees every job exactly)."""
    path = Path(profile)
    path = path / "config.yaml" if path.is_dir() else path
    cfg = yaml.safe_load(path.read_text()) or {}
    defaults = _kv_list(cfg.get("default-resources"))
    per_rule = _set_resources(cfg.get("set-resources"))
    threads = {k: _as_int(v) for k, v in _kv_list(cfg.get("set-threads")).items()}
    base_where = {k: f"default-resources: {k} in {path}" for k in
                  ("slurm_partition", "slurm_account", "mem_mb", "cpus_per_task", "gpu", "gpu_model")}
    requests = [_request(DEFAULT, defaults, None, dict(base_where))]
    for label, (size, file) in sorted(_profile_labels(cfg, path.parent).items()):
        where = {**base_where, **{k: f"resources: {label}: {k} in {file}" for k in size}}
        requests.append(_request(label_rule(label), {**defaults, **size}, None, where))
    for rule in sorted(set(per_rule) | set(threads)):
        res = {**defaults, **per_rule.get(rule, {})}
        where = dict(base_where)
        where.update({k: f"set-resources: {rule}: {k} in {path}" for k in per_rule.get(rule, {})})
        requests.append(_request(rule, res, threads.get(rule), where))
    status = cfg.get("slurm-status-command")
    return ProfileSettings(requests, str(status) if status else None,
                           _as_int(cfg.get("slurm-init-seconds-before-status-checks")))


def check_profile(profile: str | Path, cluster: Cluster | None = None) -> list[str]:
    settings = requests_from_profile(profile)
    cluster = cluster or query_cluster()
    return check(settings.requests, cluster, settings.status_command or "sacct", settings.init_seconds)


# ---------------------------------------------------------------- requests from a running workflow


def requests_from_jobs(jobs: Iterable[Any]) -> list[Request]:
    """One request per rule (its largest job) from snakemake jobs (``job.resources``, ``job.threads``)."""
    by_rule: dict[str, Request] = {}
    for job in jobs:
        res = job.resources
        get = (lambda k, _r=res: _r.get(k)) if hasattr(res, "get") else (lambda k, _r=res: getattr(_r, k, None))
        values = {k: get(k) for k in ("slurm_partition", "slurm_account", "cpus_per_task", "mem_mb",
                                      "gpu", "gpu_model", "gres")}
        where = {k: f"the rule's resources label (the profile's resources.yaml), set-resources: "
                    f"{job.rule.name}: {k} or default-resources: {k}" for k in values}
        req = _request(job.rule.name, values, getattr(job, "threads", None), where)
        old = by_rule.get(req.rule)
        if old is None or (req.mem_mb or 0, req.cpus or 0, req.gpus) > (old.mem_mb or 0, old.cpus or 0, old.gpus):
            by_rule[req.rule] = req
    return list(by_rule.values())


def check_snakemake_workflow(workflow: Any) -> None:
    """For the Snakefile's ``onstart``: with the slurm executor, check every job about to be
    submitted; raise (stopping the run before any sbatch) with all problems. No-op otherwise."""
    plugin = getattr(workflow, "executor_plugin", None)
    if plugin is None or getattr(plugin, "cli_prefix", "") != "slurm":
        return
    settings = workflow.executor_settings
    try:
        cluster = query_cluster()
    except SlurmUnavailable as exc:
        raise PreflightError(f"SLURM pre-flight check: {exc}") from None
    jobs = [j for j in workflow.dag.needrun_jobs() if not getattr(j, "is_local", False)]
    require(requests_from_jobs(jobs), cluster, getattr(settings, "status_command", None) or "sacct",
            getattr(settings, "init_seconds_before_status_checks", None), source="the workflow's jobs")
