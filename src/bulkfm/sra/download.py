"""FASTQ for one run: ENA HTTPS download (md5-checked, resumable) or sra-tools prefetch + fasterq-dump.

Everything is written under a work folder beside the outputs (``.RUN.partial``) and moved into
place at the end, then ``RUN.manifest.json`` is written last: a FASTQ name in ``dest_dir``
therefore always means a complete file, and a run with a valid manifest is not fetched again.
A failed ENA transfer keeps its ``.part`` file in the work folder, so a rerun resumes it with an
HTTP Range request. Accessions are validated before any URL or command is built, commands are
argument lists (never a shell), and URLs from metadata must point at ENA's FASTQ tree.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import requests

from bulkfm.common.atomic import write_text_atomic
from bulkfm.common.deadline import total_deadline
from bulkfm.sra import ena
from bulkfm.sra.accessions import validate_run
from bulkfm.sra.net import NETWORK_FIX, TRANSIENT, Endpoints, NetworkError, RetryPolicy, permanent_reason, session

log = logging.getLogger(__name__)

METHODS = ("auto", "ena", "sra-tools")
_ENA_PATH = re.compile(r"^(?:(?:ftp|https?)://)?ftp\.sra\.ebi\.ac\.uk(/vol1/[A-Za-z0-9_./-]+\.f(?:ast)?q\.gz)$")


class DownloadError(RuntimeError):
    """A run's FASTQ could not be fetched; the message names the run and the fix."""


def manifest_path(run: str, dest_dir: Path) -> Path:
    return Path(dest_dir) / f"{run}.manifest.json"


def fetch_fastq(
    run: str,
    dest_dir: Path,
    *,
    method: str = "auto",
    threads: int = 2,
    retries: int = 3,
    ena_urls: list[str] | None = None,
    md5s: list[str] | None = None,
    tmp_dir: Path | None = None,
    endpoints: Endpoints | None = None,
    backoff_s: float = 2.0,
    timeout_s: float = 60.0,
    sra_path: Path | None = None,
    prefetch_max_size: str = "200G",
    sess: requests.Session | None = None,
) -> list[Path]:
    """Fetch a run's FASTQ into ``dest_dir``; returns ``[RUN.fastq(.gz)]`` or ``[RUN_1…, RUN_2…]``.

    ``method``: ``ena`` (``ena_urls``/``md5s`` from the metadata table, else looked up in the ENA
    filereport), ``sra-tools`` (``prefetch`` then ``fasterq-dump --split-3``; ``sra_path`` uses a
    local .sra instead of prefetch), or ``auto`` (ENA when it has FASTQ for the run, sra-tools
    otherwise or when ENA fails). ENA files stay gzipped; fasterq-dump writes plain FASTQ.
    ``tmp_dir`` holds the work folder (defaults to ``dest_dir``; same filesystem is fastest).
    """
    run = validate_run(run.strip().upper())
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    done = _completed(run, dest_dir)
    if done is not None:
        log.info("%s: already complete in %s", run, dest_dir)
        return done
    work = Path(tmp_dir or dest_dir) / f".{run}.partial"
    work.mkdir(parents=True, exist_ok=True)
    policy = RetryPolicy(retries=retries, backoff_s=backoff_s, max_backoff_s=max(backoff_s, 60.0), timeout_s=timeout_s)
    endpoints = endpoints or Endpoints()
    errors: list[str] = []
    files, info = None, {}
    if method in ("auto", "ena") and sra_path is None:
        files, info = _try_ena(run, method, ena_urls, md5s, work, endpoints, policy, sess, errors)
    if files is None:
        try:
            files, dropped = _fetch_sra_tools(run, work, threads, policy, sra_path, prefetch_max_size)
            info = {"method": "sra-tools", "dropped_unpaired_reads": dropped}
        except DownloadError as exc:
            errors.append(f"sra-tools: {exc}")
            raise DownloadError(
                f"could not fetch FASTQ for {run}:\n  " + "\n  ".join(errors)
                + f"\nFix: {NETWORK_FIX} A rerun resumes partial ENA downloads."
            ) from exc
    return _finish(run, files, dest_dir, work, info)


def _finish(run: str, files: list[Path], dest_dir: Path, work: Path, info: dict[str, Any]
            ) -> list[Path]:
    """Move the files into place, then write the manifest last: it marks the run complete."""
    out = [_move_into(f, dest_dir / f.name) for f in files]
    manifest = {
        "run": run,
        "layout": "PAIRED" if len(out) == 2 else "SINGLE",
        "files": [{"name": p.name, "bytes": p.stat().st_size} for p in out],
        **info,
    }
    write_text_atomic(manifest_path(run, dest_dir), json.dumps(manifest, indent=1) + "\n")
    shutil.rmtree(work, ignore_errors=True)
    return out


def _try_ena(run: str, method: str, ena_urls: list[str] | None, md5s: list[str] | None,
             work: Path, endpoints: Endpoints, policy: RetryPolicy,
             sess: requests.Session | None, errors: list[str]
             ) -> tuple[list[Path] | None, dict[str, Any]]:
    """ENA's FASTQ for ``run``: (files, manifest info), or (None, {}) with the reason appended
    to ``errors`` when ``auto`` should fall back to sra-tools. With ``method="ena"`` a failure
    is final."""
    try:
        urls, sums = _ena_targets(run, ena_urls, md5s, endpoints, policy, sess)
        if urls:
            files = _fetch_ena(run, urls, sums, work, endpoints, policy, sess or session())
            return files, {"method": "ena", "md5": sums}
        if method == "ena":
            raise DownloadError(f"{run}: ENA lists no FASTQ files for this run")
    except (DownloadError, NetworkError) as exc:
        if method == "ena":
            raise DownloadError(f"{exc}\nFix: rerun (partial files resume), or use --method sra-tools.") from exc
        errors.append(f"ENA: {exc}")
        log.warning("%s: ENA download failed (%s); trying sra-tools", run, exc)
    return None, {}


def _completed(run: str, dest_dir: Path) -> list[Path] | None:
    mpath = manifest_path(run, dest_dir)
    if not mpath.is_file():
        return None
    try:
        m = json.loads(mpath.read_text())
        out = [dest_dir / f["name"] for f in m["files"]]
        if all(p.is_file() and p.stat().st_size == f["bytes"] for p, f in zip(out, m["files"], strict=True)):
            return out
    except (ValueError, KeyError, TypeError, OSError):
        pass
    log.warning("%s: manifest %s does not match the files; fetching again", run, mpath)
    mpath.unlink(missing_ok=True)
    return None


def _move_into(src: Path, dst: Path) -> Path:
    try:
        os.replace(src, dst)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        tmp = dst.with_name(f".{dst.name}.tmp")  # other filesystem: copy beside, then rename
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
        src.unlink()
    return dst


# ---- ENA ---------------------------------------------------------------------------------------


def https_url(url: str, endpoints: Endpoints) -> str:
    """ENA ``fastq_ftp`` value -> HTTPS URL under ``endpoints.ena_fastq``; rejects anything else."""
    m = _ENA_PATH.match(url.strip())
    if not m or ".." in m.group(1):
        raise DownloadError(f"refusing FASTQ URL {url[:120]!r}: not an ENA ftp.sra.ebi.ac.uk/vol1/... FASTQ path")
    return endpoints.ena_fastq + m.group(1)


def select_mates(run: str, urls: Sequence[str], md5s: Sequence[str] | None) -> tuple[list[tuple[str, str]], list[str | None]]:
    """Pick (url, output name) for a run's files: _1/_2 when paired, else the single file.

    ENA lists a third ``RUN.fastq.gz`` for paired runs with unpaired reads; it is skipped.
    """
    sums: list[str | None] = list(md5s) if md5s else [None] * len(urls)
    if len(sums) != len(urls):
        raise DownloadError(f"{run}: {len(urls)} FASTQ URLs but {len(sums)} md5 values in the metadata")
    by_name = {u.rsplit("/", 1)[-1]: (u, s) for u, s in zip(urls, sums, strict=True)}
    for names in ([f"{run}_1.fastq.gz", f"{run}_2.fastq.gz"], [f"{run}.fastq.gz"], [f"{run}_1.fastq.gz"]):
        if all(n in by_name for n in names):
            if len(urls) > len(names):
                log.info("%s: skipping %d extra ENA file(s) (unpaired reads)", run, len(urls) - len(names))
            return [(by_name[n][0], n) for n in names], [by_name[n][1] for n in names]
    raise DownloadError(f"{run}: ENA FASTQ files {sorted(by_name)} do not follow RUN[_1|_2].fastq.gz naming")


def _ena_targets(
    run: str, urls: list[str] | None, md5s: list[str] | None, endpoints: Endpoints, policy: RetryPolicy, sess: requests.Session | None
) -> tuple[list[tuple[str, str]], list[str | None]]:
    if not urls:
        rows = [r for r in ena.filereport(run, sess or session(), endpoints, policy) if r["run"] == run]
        if not rows or not rows[0].get("fastq_ftp"):
            return [], []
        urls = rows[0]["fastq_ftp"].split(";")
        md5s = rows[0]["fastq_md5"].split(";") if rows[0].get("fastq_md5") else None
    urls = [u for u in urls if u]
    return select_mates(run, urls, md5s)


def _fetch_ena(
    run: str, targets: list[tuple[str, str]], sums: list[str | None], work: Path,
    endpoints: Endpoints, policy: RetryPolicy, sess: requests.Session,
) -> list[Path]:
    out = []
    for (url, name), md5 in zip(targets, sums, strict=True):
        final = work / name
        if not (final.is_file() and (md5 is None or file_md5(final) == md5)):
            download(https_url(url, endpoints), final, md5, policy, sess, what=f"{run} {name}")
        out.append(final)
    return out


# A FASTQ body may take hours, so it has no total deadline; instead each window of timeout_s
# must bring this many bytes, or the transfer counts as stalled (a server dripping a byte a
# second) and is cut, to be resumed with a Range request like any cut connection.
MIN_BYTES_PER_WINDOW = 64 * 1024


def _copy_body(r: requests.Response, fh: Any, window_s: float = 60.0, what: str = "download") -> None:
    """Write the raw body (never content-decoded: .fastq.gz stays as served) as it arrives.

    ``read1`` returns what has arrived, so bytes before a cut are kept for the Range resume
    (``iter_content`` would lose its partly filled buffer with the exception).
    """
    raw = r.raw
    start, got = time.monotonic(), 0
    try:
        while block := raw.read1(1 << 20, decode_content=False):
            fh.write(block)
            got += len(block)
            if time.monotonic() - start >= window_s:
                if got < MIN_BYTES_PER_WINDOW:
                    fh.flush()
                    raise requests.Timeout(f"{what}: stalled, {got} bytes in {window_s:g}s (fewer than "
                                           f"{MIN_BYTES_PER_WINDOW}); cut to resume")
                start, got = time.monotonic(), 0
    except requests.Timeout:
        raise
    except Exception as exc:  # urllib3 errors -> requests' types, as iter_content would raise
        from urllib3.exceptions import ProtocolError, ReadTimeoutError

        if isinstance(exc, ProtocolError):
            raise requests.exceptions.ChunkedEncodingError(exc) from exc
        if isinstance(exc, ReadTimeoutError):
            raise requests.exceptions.ConnectionError(exc) from exc
        raise


def file_md5(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def download(url: str, target: Path, md5: str | None, policy: RetryPolicy, sess: requests.Session, what: str) -> Path:
    """Stream ``url`` to ``target`` via ``target.part``; resume with Range after a cut connection;
    on an md5 mismatch delete and start again. Raises :class:`DownloadError` when retries run out."""
    part = target.with_name(target.name + ".part")
    waits = policy.waits()
    last = ""
    for attempt in range(len(waits) + 1):
        if attempt:
            time.sleep(waits[attempt - 1])
        offset = part.stat().st_size if part.exists() else 0
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        try:
            with total_deadline(policy.timeout_s, what):  # status line + headers: total deadline
                r = sess.get(url, headers=headers, stream=True, timeout=policy.timeout_s)
            with r:
                if r.status_code == 416 and offset:
                    pass  # nothing left to send: the part is complete
                elif r.status_code in (200, 206):
                    mode = "ab" if r.status_code == 206 and offset else "wb"
                    if mode == "wb" and offset:
                        log.info("%s: server ignored the Range request; restarting", what)
                    with open(part, mode) as fh:
                        _copy_body(r, fh, policy.timeout_s, what)
                elif r.status_code == 404:
                    raise DownloadError(f"{what}: {url} not found (HTTP 404); the ENA record may have changed: resolve again")
                else:
                    last = f"HTTP {r.status_code}"
                    log.warning("%s: %s; retry %d/%d", what, last, attempt + 1, len(waits))
                    continue
        except TRANSIENT as exc:
            last = f"{type(exc).__name__}: {exc}"[:300]
            permanent = permanent_reason(exc)
            if permanent:  # DNS / no route / refused: no wait cures it
                raise DownloadError(f"{what}: {url}: {permanent}; not retried ({last}). {NETWORK_FIX}") from exc
            size = part.stat().st_size if part.exists() else 0
            log.warning("%s: connection lost at %d bytes (%s); resuming (%d/%d)", what, size, last, attempt + 1, len(waits))
            continue
        if md5 is not None:
            got = file_md5(part)
            if got != md5.lower():
                last = f"md5 mismatch: expected {md5}, got {got}"
                log.warning("%s: %s; deleting and downloading again (%d/%d)", what, last, attempt + 1, len(waits))
                part.unlink()
                continue
        os.replace(part, target)
        return target
    raise DownloadError(f"{what}: gave up after {len(waits) + 1} attempts ({last})")


# ---- sra-tools ---------------------------------------------------------------------------------


def _run_tool(args: list[str], what: str, policy: RetryPolicy) -> None:
    exe = shutil.which(args[0])
    if exe is None:
        raise DownloadError(f"{args[0]} not found on PATH: install sra-tools (apt install sra-toolkit, or conda sra-tools)")
    waits = policy.waits()
    for attempt in range(len(waits) + 1):
        proc = subprocess.run([exe, *args[1:]], capture_output=True, text=True, check=False)
        if proc.returncode == 0:
            return
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        msg = f"{what} exited {proc.returncode}: {' | '.join(tail)[:400]}"
        if attempt == len(waits):
            raise DownloadError(msg)
        log.warning("%s; retry %d/%d in %.1fs", msg, attempt + 1, len(waits), waits[attempt])
        time.sleep(waits[attempt])


def _fetch_sra_tools(
    run: str, work: Path, threads: int, policy: RetryPolicy, sra_path: Path | None, max_size: str
) -> tuple[list[Path], int]:
    if sra_path is None:
        pre = work / "prefetch"
        _run_tool(["prefetch", run, "--output-directory", str(pre), "--max-size", max_size], f"prefetch {run}", policy)
        found = sorted((pre / run).glob(f"{run}.sra*")) if (pre / run).is_dir() else []
        if not found:
            raise DownloadError(f"prefetch {run} succeeded but left no {run}.sra in {pre}")
        sra_path = found[0]
    sra_path = Path(sra_path).resolve()
    if not sra_path.is_file():
        raise DownloadError(f"{run}: SRA file {sra_path} does not exist")
    out = work / "fasterq"
    shutil.rmtree(out, ignore_errors=True)  # a previous dump may be partial: never reuse it
    out.mkdir()
    scratch = work / "scratch"
    scratch.mkdir(exist_ok=True)
    args = ["fasterq-dump", str(sra_path), "--split-3", "--skip-technical", "--force",
            "--outdir", str(out), "--temp", str(scratch), "--threads", str(max(1, threads))]
    # fasterq-dump names outputs after the file's stem; run it on a file named after the run.
    if sra_path.stem != run:
        link = scratch / f"{run}.sra"
        link.unlink(missing_ok=True)
        link.symlink_to(sra_path)
        args[1] = str(link)
    _run_tool(args, f"fasterq-dump {run}", RetryPolicy(retries=0))
    files = {p.name: p for p in out.iterdir()}
    mates = [files.get(f"{run}_1.fastq"), files.get(f"{run}_2.fastq")]
    single = files.get(f"{run}.fastq")
    dropped = 0
    if mates[0] and mates[1]:
        if single:  # --split-3 puts reads whose mate is missing in a third file; salmon -1/-2 cannot use them
            dropped = _count_lines(single) // 4
            log.warning("%s: dropping %d unpaired reads (fasterq-dump third file)", run, dropped)
            single.unlink()
        result = [mates[0], mates[1]]
    elif single and not (mates[0] or mates[1]):
        result = [single]
    elif mates[0] and not mates[1] and not single:
        result = [mates[0]]
    else:
        raise DownloadError(f"fasterq-dump {run} wrote an unexpected set of files: {sorted(files)}")
    empty = [p.name for p in result if p.stat().st_size == 0]
    if empty:
        raise DownloadError(f"fasterq-dump {run} wrote empty FASTQ {empty}: the run may hold no reads (check it on SRA)")
    moved = []
    for p in result:
        dst = work / p.name
        os.replace(p, dst)
        moved.append(dst)
    return moved, dropped


def _count_lines(path: Path) -> int:
    n = 0
    with open(path, "rb") as fh:
        while block := fh.read(1 << 22):
            n += block.count(b"\n")
    return n
