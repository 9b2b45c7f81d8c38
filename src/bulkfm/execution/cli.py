"""`bulkfm slurm-check`: check a SLURM profile against the cluster before a long run."""

from __future__ import annotations

import argparse
import sys

from bulkfm.execution.preflight import check_profile
from bulkfm.execution.slurm_cluster import SlurmUnavailable


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "slurm-check",
        help="check a SLURM profile (partitions, GPUs, sizes, account, sacct) against this cluster",
        description=(
            "Read the profile's default-resources, set-resources and set-threads and check each rule's "
            "request against what sinfo/scontrol/sacct/sacctmgr report: partition exists and is up, "
            "GPU partition and GPU type exist, CPUs/memory fit a node, the account is yours, and the "
            "job status command works (sacct needs slurmdbd; otherwise set slurm-status-command: "
            "squeue). Exit 0 when every request can run, 2 with one line per problem naming the rule "
            "and the profile key to change. The same check runs at the start of "
            "`snakemake --profile profiles/slurm` over the actual jobs."
        ),
    )
    p.add_argument("--profile", default="profiles/slurm", help="profile directory or its config.yaml "
                   "(default: profiles/slurm)")
    p.set_defaults(func=_handler)


def _handler(args: argparse.Namespace) -> int:
    from bulkfm.cli import UserError

    try:
        problems = check_profile(args.profile)
    except SlurmUnavailable as exc:
        raise UserError(f"{exc}; run this on a SLURM login node") from None
    except FileNotFoundError as exc:
        raise UserError(f"profile not found: {exc.filename} (--profile)") from None
    if problems:
        raise UserError("the profile cannot run on this cluster:\n" + "\n".join(f"  - {p}" for p in problems))
    print(f"slurm-check: {args.profile}: every rule's request fits this cluster", file=sys.stdout)
    return 0
