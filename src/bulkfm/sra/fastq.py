"""Cheap FASTQ sanity check before quantification, one streaming pass per file.

Catches what would otherwise make salmon fail late or, worse, quietly quantify garbage:
truncated or corrupt gzip (the gzip CRC and length trailer are checked while streaming), empty
files, files that are not FASTQ, a line count that is not a multiple of 4 (cut records), and
mates that do not pair (different read counts, or first/last read names that differ).
The full record structure is checked on the first records and the last one; the body is only
counted (bytes.count is C speed), which keeps the check at disk/inflate speed.
"""

from __future__ import annotations

import gzip
import time
from concurrent.futures import ThreadPoolExecutor
import zlib
from dataclasses import dataclass, field
from pathlib import Path

CHUNK = 1 << 22
HEAD_RECORDS = 1000
TAIL = 1 << 18  # bytes kept to check the last record


class FastqError(ValueError):
    """A FASTQ file (or pair) is unusable; the message names the sample, the file and the fix."""


@dataclass
class FileStats:
    path: Path
    reads: int
    bytes: int
    read_length: int
    first_name: str
    last_name: str


@dataclass
class FastqStats:
    sample: str
    files: list[FileStats] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def paired(self) -> bool:
        return len(self.files) == 2

    @property
    def reads(self) -> int:
        """Reads (single) or read pairs (paired)."""
        return self.files[0].reads if self.files else 0

    def as_dict(self) -> dict[str, object]:
        return {
            "sample": self.sample,
            "paired": self.paired,
            "reads": self.reads,
            "files": [
                {"path": str(f.path), "reads": f.reads, "bytes": f.bytes, "read_length": f.read_length}
                for f in self.files
            ],
            "seconds": round(self.seconds, 3),
        }


try:  # ISA-L inflate is about 2x zlib's; same gzip semantics (CRC + length checked)
    from isal import igzip as _gzip
    from isal.isal_zlib import error as _InflateError
except ImportError:  # pragma: no cover - isal is a dependency, but keep working without it
    _gzip = gzip  # type: ignore[misc]
    _InflateError = zlib.error  # type: ignore[misc]


def _open(path: Path):  # type: ignore[no-untyped-def]
    with open(path, "rb") as fh:
        magic = fh.read(2)
    return _gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


def _name(header: bytes) -> str:
    """Read name without '@', comments and a /1 /2 mate suffix."""
    name = header[1:].split(None, 1)[0].decode("ascii", "replace") if len(header) > 1 else ""
    return name[:-2] if name.endswith(("/1", "/2")) else name


def _bad(sample: str, path: Path, what: str, fix: str) -> FastqError:
    return FastqError(f"sample {sample}: {path.name}: {what}. Fix: {fix}")


REFETCH = "delete the file and download the run again (bulkfm sra download RUN), or replace the local FASTQ"


def _check_records(sample: str, path: Path, lines: list[bytes], where: str) -> None:
    for i in range(0, len(lines) - 3, 4):
        h, s, p, q = lines[i : i + 4]
        if not h.startswith(b"@") or not p.startswith(b"+") or len(s) != len(q) or not s:
            raise _bad(
                sample, path,
                f"malformed FASTQ record at {where} record {i // 4 + 1} (header {h[:60]!r})",
                "check that the file is FASTQ (not FASTA/BAM) and complete; " + REFETCH,
            )


def check_file(path: Path, sample: str) -> FileStats:
    path = Path(path)
    if not path.is_file():
        raise _bad(sample, path, "file does not exist", "check the sample sheet path or rerun the download")
    size = path.stat().st_size
    if size == 0:
        raise _bad(sample, path, "file is empty (0 bytes)", REFETCH)
    n_lines = 0
    head: list[bytes] = []
    tail = b""
    try:
        with _open(path) as fh:
            while block := fh.read(CHUNK):
                if not head:  # complete lines of the first block (the split's rest may be cut)
                    head = block.split(b"\n", 4 * HEAD_RECORDS)[:-1]
                n_lines += block.count(b"\n")
                tail = (tail + block)[-TAIL:] if len(block) < TAIL else block[-TAIL:]
    except (EOFError, OSError, zlib.error, _InflateError) as exc:
        raise _bad(
            sample, path,
            f"gzip stream is truncated or corrupt ({type(exc).__name__}: {exc})",
            "the download was cut or the file damaged; " + REFETCH,
        ) from exc
    if n_lines == 0 and not tail.strip():
        raise _bad(sample, path, "contains no reads (decompresses to nothing)", REFETCH)
    if not tail.endswith(b"\n"):
        n_lines += 1  # last line without newline
    if n_lines % 4:
        raise _bad(
            sample, path,
            f"{n_lines} lines is not a multiple of 4: the last record is cut",
            "the file is truncated; " + REFETCH,
        )
    head = head[: len(head) // 4 * 4]
    _check_records(sample, path, head, "start,")
    parts = tail.rstrip(b"\n").split(b"\n")
    last = parts[-4:] if len(parts) >= 5 or len(tail) < TAIL else []  # need 4 whole lines
    if len(last) == 4:
        _check_records(sample, path, last, "end,")
    first = head[:4] or last
    if len(first) < 4:
        raise _bad(sample, path, "no complete FASTQ record found", "check that the file is FASTQ; " + REFETCH)
    return FileStats(
        path=path,
        reads=n_lines // 4,
        bytes=size,
        read_length=len(first[1]),
        first_name=_name(first[0]),
        last_name=_name(last[0]) if len(last) == 4 else _name(first[0]),
    )


def check_fastq(paths: list[Path], sample: str) -> FastqStats:
    """Check 1 (single-end) or 2 (paired) FASTQ files of ``sample``; raise :class:`FastqError`."""
    t0 = time.perf_counter()
    if len(paths) not in (1, 2):
        raise FastqError(f"sample {sample}: expected 1 or 2 FASTQ files, got {len(paths)}: fix the sample sheet row")
    if len(paths) == 2:  # zlib releases the GIL: inflate both mates at once
        with ThreadPoolExecutor(max_workers=2) as pool:
            files = list(pool.map(lambda p: check_file(Path(p), sample), paths))
    else:
        files = [check_file(Path(paths[0]), sample)]
    stats = FastqStats(sample, files)
    if stats.paired:
        a, b = stats.files
        if a.reads != b.reads:
            raise FastqError(
                f"sample {sample}: mates do not pair: {a.path.name} has {a.reads} reads, "
                f"{b.path.name} has {b.reads}. Fix: give the two files of the same run (re-download if one was cut)."
            )
        for which, x, y in (("first", a.first_name, b.first_name), ("last", a.last_name, b.last_name)):
            if x != y:
                raise FastqError(
                    f"sample {sample}: mates do not pair: {which} read names differ ({x!r} in {a.path.name} vs "
                    f"{y!r} in {b.path.name}). Fix: pass the _1/_2 files of the same run, in the same order."
                )
    stats.seconds = time.perf_counter() - t0
    return stats
