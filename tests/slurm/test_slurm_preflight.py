"""The SLURM pre-flight check: pure logic on described clusters (no cluster needed), and the
shipped profile against the real local cluster."""

from __future__ import annotations

import argparse

import pytest
import yaml

from bulkfm.execution import cli as exec_cli
from bulkfm.execution.preflight import Request, check, check_profile, label_rule, requests_from_profile
from bulkfm.execution.slurm_cluster import Cluster, Partition, parse_gres, parse_sinfo, query_cluster

from slurm_helpers import REPO, site_profile

CPU_ONLY = Cluster(
    partitions={"batch": Partition("batch", True, True, 64, 256_000, {})},
    sacct_error=None, min_job_age_s=300, accounts=frozenset({"lab"}),
)
WITH_GPU = Cluster(
    partitions={"batch": Partition("batch", True, True, 64, 256_000, {}),
                "gpu": Partition("gpu", False, True, 32, 512_000, {"a100": 4})},
    sacct_error=None, min_job_age_s=300, accounts=frozenset({"lab"}),
)


def test_parse_sinfo_and_gres():
    assert parse_gres("gpu:a100:4(S:0-1),gpu:2") == {"a100": 4, "": 2}
    assert parse_gres("(null)") == {}
    parts = parse_sinfo("debug*|up|2|22057|gpu:fake:1\ngpu|up|2|22057|gpu:fake:1(S:0)\nbig|down|128+|1000000|(null)\n")
    assert parts["debug"].default and not parts["gpu"].default
    assert parts["gpu"].gpus == {"fake": 1} and parts["big"].cpus == 128 and not parts["big"].up


def test_gpu_rule_on_a_cluster_without_gpus_names_rule_and_key():
    req = Request("train", partition="batch", gpus=1, where={"gpu": "set-resources: train: gpu in p.yaml"})
    [msg] = check([req], CPU_ONLY)
    assert "rule train: asks for 1 GPU(s)" in msg and "declares no GPU" in msg
    assert "set-resources: train: gpu in p.yaml" in msg


def test_missing_partition_type_size_account():
    problems = check([
        Request("train", partition="gpu-h100", gpus=1),
        Request("embed", partition="gpu", gpus=1, gpu_model="h100"),
        Request("graph", partition="gpu", gpus=8),
        Request("quant_batch", partition=None, cpus=128, mem_mb=300_000, account="other"),
    ], WITH_GPU)
    text = "\n".join(problems)
    assert "rule train: partition 'gpu-h100' does not exist on this cluster (partitions: batch, gpu)" in text
    assert "rule embed: GPU type 'h100' is not on partition 'gpu' (types: a100)" in text
    assert "rule graph: asks for 8 GPUs, the nodes of 'gpu' have at most 4" in text
    assert "rule quant_batch: asks for 128 CPUs, the largest node of 'batch' has 64" in text
    assert "rule quant_batch: asks for 300000 MB" in text
    assert "account 'other' is not one of your SLURM accounts (lab)" in text
    assert check([Request("train", partition="gpu", gpus=2, gpu_model="a100", cpus=8)], WITH_GPU) == []


def test_sacct_unavailable_is_named_not_a_hang():
    no_dbd = Cluster(CPU_ONLY.partitions, sacct_error="Slurm accounting storage is disabled",
                     min_job_age_s=300, accounts=None)
    [msg] = check([Request("all")], no_dbd, status_command="sacct")
    assert "sacct is unavailable (Slurm accounting storage is disabled)" in msg
    assert "slurm-status-command: squeue" in msg
    assert check([Request("all")], no_dbd, status_command="squeue", init_seconds=20) == []
    short_age = Cluster(no_dbd.partitions, no_dbd.sacct_error, min_job_age_s=30, accounts=None)
    [short] = check([Request("all")], short_age, status_command="squeue", init_seconds=20)
    assert "MinJobAge=30" in short


def test_profile_requests_merge_defaults_and_rules():
    settings = requests_from_profile(REPO / "profiles" / "slurm")
    reqs = {r.rule: r for r in settings.requests}
    gpu = reqs[label_rule("gpu")]  # the label the GPU rules take, from the profile's resources.yaml
    assert gpu.partition == "gpu" and gpu.gpus == 1 and gpu.gpu_model and gpu.mem_mb == 64000
    assert "resources: gpu: slurm_partition in " in gpu.key("slurm_partition")
    medium = reqs[label_rule("medium")]
    assert medium.partition == "debug" and medium.mem_mb == 16000 and medium.gpus == 0
    assert reqs["quant_batch"].partition == "debug" and reqs["quant_batch"].cpus == 8  # set-threads
    assert reqs["quant_batch"].account == "bulkfm"
    assert settings.status_command is None  # sacct, the plugin's default


@pytest.mark.slurm
def test_shipped_profile_against_the_real_cluster(slurm_cluster, tmp_path):
    cluster = query_cluster()
    assert cluster.sacct_error is None and cluster.partitions["gpu"].gpus == {"fake": 1}
    assert "bulkfm" in cluster.accounts
    # As shipped: sizes meant for a production node are named, rule by rule.
    problems = check_profile(REPO / "profiles" / "slurm", cluster)
    assert any("rule quant_batch: asks for 8 CPUs" in p for p in problems)
    # Fitted to this node (what a site edits): nothing left.
    assert check_profile(site_profile(tmp_path / "site", slurm_cluster), cluster) == []
    # A typo in the GPU partition, via the CLI handler.
    sizes_file = tmp_path / "site" / "resources.yaml"
    sizes = yaml.safe_load(sizes_file.read_text())
    sizes["resources"]["gpu"]["slurm_partition"] = "gpus"
    sizes_file.write_text(yaml.safe_dump(sizes))
    parser = argparse.ArgumentParser()
    exec_cli.register(parser.add_subparsers())
    args = parser.parse_args(["slurm-check", "--profile", str(tmp_path / "site")])
    from bulkfm.cli import UserError
    with pytest.raises(UserError, match=r"rule gpu \(resources label\): partition 'gpus' does not exist.*"
                                        r"resources: gpu: slurm_partition in .*resources.yaml"):
        args.func(args)
