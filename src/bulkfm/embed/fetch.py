"""Download a protein FASTA once, for production runs (the demo uses the bundled subset)."""

from __future__ import annotations

import gzip
import logging
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

from bulkfm.common.atomic import atomic_path

log = logging.getLogger(__name__)


def fetch_fasta(url: str, output: Path, *, retries: int = 3, timeout: float = 60.0) -> Path:
    """Stream ``url`` to ``output`` (atomic), retrying; fail unless it starts like a FASTA."""
    if urlparse(url).scheme not in ("http", "https", "ftp"):
        raise ValueError("only http, https and ftp URLs are fetched")
    last: Exception | None = None
    for attempt in range(1, retries + 1):
        try:
            with atomic_path(output, suffix=Path(url).suffix) as tmp:
                with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as f:
                    shutil.copyfileobj(response, f, length=1 << 20)
                _check_fasta(tmp, gz=output.suffix == ".gz" or url.endswith(".gz"))
            log.info("fetched %s -> %s (%.1f MB)", url, output, output.stat().st_size / 1e6)
            return output
        except urllib.error.HTTPError as exc:
            if exc.code < 500:  # 404, 403: asking again will not help
                raise OSError(f"HTTP {exc.code} {exc.reason}; check embed.proteins_url") from exc
            last = exc
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            last = exc
        log.warning("attempt %d/%d for %s failed: %s", attempt, retries, url, last)
        if attempt < retries:
            time.sleep(min(2**attempt, 30))
    raise OSError(f"download failed after {retries} attempts: {last}")


def _check_fasta(path: Path, gz: bool) -> None:
    opener = gzip.open if gz else open
    try:
        with opener(path, "rt") as handle:
            first = handle.read(1)
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"not a {'gzipped ' if gz else ''}FASTA ({exc})") from exc
    if first != ">":
        raise ValueError("the download does not start with a FASTA header ('>')")
