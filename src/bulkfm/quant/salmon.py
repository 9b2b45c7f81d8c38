"""Salmon, called with argument lists (never a shell string) and atomic output directories."""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

from bulkfm.common.atomic import atomic_path

log = logging.getLogger(__name__)


class SalmonError(RuntimeError):
    """Salmon exited non-zero; the message carries the sample and the tail of Salmon's log."""


def salmon_version() -> str:
    exe = shutil.which("salmon")
    if exe is None:
        raise SalmonError("salmon is not on PATH: install it (apt-get install salmon, or the "
                          "conda env envs/salmon.yaml)")
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False)
    return (out.stdout or out.stderr).strip().removeprefix("salmon ").strip()


def _run(cmd: list[str], what: str, log_path: Path | None) -> None:
    log.info("running: %s", " ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise SalmonError(f"{what} failed (exit {proc.returncode}). Last lines of its log:\n{tail}")


def build_index(transcripts: str | Path, out: str | Path, *, genome: str | Path | None = None,
                kmer: int = 31, threads: int = 2, gencode: bool = False,
                log_path: Path | None = None) -> Path:
    """``salmon index``, decoy-aware when a genome FASTA is given (the production setting).

    The decoy-aware index is built from a *gentrome* (transcripts followed by the genome) with
    the genome's sequence names as decoys, so reads from unannotated or intronic loci are not
    forced onto transcripts (Srivastava et al. 2020).
    """
    out = Path(out)
    with atomic_path(out) as tmp:
        cmd = ["salmon", "index", "-t", str(transcripts), "-i", str(tmp), "-k", str(kmer),
               "-p", str(threads)]
        if gencode:
            cmd.append("--gencode")
        if genome is not None:
            tmp.mkdir()
            gentrome, decoys = tmp / "gentrome.fa.gz", tmp / "decoys.txt"
            _write_gentrome(Path(transcripts), Path(genome), gentrome, decoys)
            index_dir = tmp / "index"
            cmd = ["salmon", "index", "-t", str(gentrome), "-d", str(decoys), "-i", str(index_dir),
                   "-k", str(kmer), "-p", str(threads)] + (["--gencode"] if gencode else [])
            _run(cmd, "salmon index (decoy-aware)", log_path)
            gentrome.unlink()
            # Flatten so that the index lives at ``out`` in both modes.
            for child in index_dir.iterdir():
                child.rename(tmp / child.name)
            index_dir.rmdir()
        else:
            _run(cmd, "salmon index", log_path)
    return out


def _write_gentrome(transcripts: Path, genome: Path, gentrome: Path, decoys: Path) -> None:
    import gzip

    def opener(p: Path):
        return gzip.open(p, "rb") if p.suffix == ".gz" else open(p, "rb")

    names = []
    with gzip.open(gentrome, "wb", compresslevel=1) as out:
        with opener(transcripts) as fh:
            shutil.copyfileobj(fh, out)
        with opener(genome) as fh:
            for line in fh:
                if line.startswith(b">"):
                    names.append(line[1:].split()[0].decode())
                out.write(line)
    decoys.write_text("\n".join(names) + "\n")


def quant(index: str | Path, fastqs: list[Path], out: str | Path, *, sample: str,
          threads: int = 2, libtype: str = "A", extra_args: list[str] | None = None) -> Path:
    """``salmon quant -l A --validateMappings`` into ``out`` (atomic)."""
    if len(fastqs) not in (1, 2):
        raise SalmonError(f"sample {sample}: expected 1 or 2 FASTQ files, got {len(fastqs)}")
    out = Path(out)
    with atomic_path(out) as tmp:
        reads = ["-r", str(fastqs[0])] if len(fastqs) == 1 else ["-1", str(fastqs[0]), "-2", str(fastqs[1])]
        cmd = ["salmon", "quant", "-i", str(index), "-l", libtype, *reads, "--validateMappings",
               "-p", str(threads), "-o", str(tmp), *(extra_args or [])]
        try:
            _run(cmd, f"salmon quant for sample {sample}", None)
        except SalmonError as exc:
            raise SalmonError(f"{exc}\nFix: check the FASTQ files of {sample} "
                              f"({', '.join(map(str, fastqs))}) and the index {index}.") from None
        if not (tmp / "quant.sf").exists():
            raise SalmonError(f"salmon quant for sample {sample} wrote no quant.sf")
    return out
