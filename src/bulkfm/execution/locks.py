"""The exact `--unlock` step after a killed or interrupted Snakemake.

A Snakemake killed (SIGKILL, OOM, a closed terminal, a node reboot) leaves its lock files in
``.snakemake/locks``; the next run then stops with a LockException that says only "It can be
removed with the --unlock argument". The Snakefile calls :func:`unlock_hint` while it is parsed
(before Snakemake takes the lock), so a stale lock is reported with the command to run, built
from the user's own command line.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from pathlib import Path

# Invocations that never take the lock (or are the fix itself).
_NO_LOCK_FLAGS = {"--unlock", "--nolock", "--no-lock"}


def lock_files(workdir: str | os.PathLike[str]) -> list[Path]:
    locks = Path(workdir) / ".snakemake" / "locks"
    return sorted(p for p in locks.iterdir() if p.is_file()) if locks.is_dir() else []


def live_snakemakes(workdir: str | os.PathLike[str]) -> list[int] | None:
    """PIDs of other Snakemake main processes running in ``workdir`` (None: cannot tell, no /proc).
    Job processes (``--nolock``: SLURM job steps, ``--mode remote``) do not hold the lock."""
    proc = Path("/proc")
    if not proc.is_dir():
        return None
    target = os.path.realpath(workdir)
    found = []
    for d in proc.iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            argv = (d / "cmdline").read_bytes().split(b"\0")
            cwd = os.readlink(d / "cwd")
        except OSError:
            continue  # gone, or not ours to read
        args = [a.decode(errors="replace") for a in argv if a]
        if any(Path(a).name == "snakemake" or a == "snakemake" for a in args[:3]) \
                and not _NO_LOCK_FLAGS & set(args) and os.path.realpath(cwd) == target:
            found.append(int(d.name))
    return found


def unlock_hint(workdir: str | os.PathLike[str], argv: Sequence[str]) -> str | None:
    """The message for a lock left in ``workdir``, or None when there is none (or ``argv`` is a
    run that takes no lock). ``argv``: this Snakemake's command line (sys.argv)."""
    args = list(argv[1:])
    if _NO_LOCK_FLAGS & set(args):
        return None
    locks = lock_files(workdir)
    if not locks:
        return None
    live = live_snakemakes(workdir)
    rest = " ".join(shlex.quote(a) for a in args)
    unlock = f"snakemake --unlock {rest}".rstrip()
    rerun = f"snakemake {rest}".rstrip()
    where = f"{Path(workdir).resolve()}/.snakemake/locks ({', '.join(p.name for p in locks)})"
    if live:
        return (f"bulkfm: {where} is held by a running Snakemake (pid {', '.join(map(str, live))}) "
                "in this directory: wait for it to finish or stop it (Ctrl-C) first; "
                f"if that process is hung, kill it, then run `{unlock}`")
    sure = "no other Snakemake runs in this directory" if live is not None else \
        "no other Snakemake runs in this directory (check with `ps -ef | grep snakemake`)"
    return (f"bulkfm: a stale lock from a killed or interrupted Snakemake is left in {where}; "
            f"{sure}, so this run would stop with LockException. Remove the lock (it deletes no "
            f"outputs; incomplete ones are redone) and rerun:\n    {unlock}\n    {rerun}")
