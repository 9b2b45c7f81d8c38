"""HTTP plumbing shared by the metadata clients and the ENA downloader.

``Endpoints`` holds every base URL the sra stage talks to, so tests (and users behind a mirror)
point the real client code at another host. ``RetryPolicy`` + :func:`get` give bounded retries
with exponential backoff for transient errors; when they run out, or at once for a failure no wait
cures (DNS, no route, refused: :func:`permanent_reason`), :class:`NetworkError` names the
accession and the fix.
"""

from __future__ import annotations

import errno
import logging
import re
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, TypeVar

import requests

from bulkfm.common.deadline import total_deadline
from bulkfm.common.settings import check_keys

log = logging.getLogger(__name__)
T = TypeVar("T")

USER_AGENT = "bulkfm-sra (+https://github.com/bulkfm)"

NETWORK_FIX = (
    "Check the network and proxy settings (HTTPS_PROXY), whether NCBI/ENA are reachable from this "
    "machine (compute nodes often are not: resolve on a login node), raise sra.retries, "
    "or list run accessions / local FASTQ files in the sample sheet instead."
)


class NetworkError(RuntimeError):
    """A remote service stayed unreachable or kept failing after all retries."""


@dataclass(frozen=True)
class Endpoints:
    """Base URLs (no trailing slash). Defaults are the public services."""

    eutils: str = "https://eutils.ncbi.nlm.nih.gov/entrez/eutils"
    ena_portal: str = "https://www.ebi.ac.uk/ena/portal/api"
    ena_browser: str = "https://www.ebi.ac.uk/ena/browser/api"
    # ENA fastq_ftp values are host-less paths "ftp.sra.ebi.ac.uk/vol1/..."; they are fetched
    # over HTTPS from this base (same path layout).
    ena_fastq: str = "https://ftp.sra.ebi.ac.uk"

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> Endpoints:
        values = dict(values or {})
        check_keys(values, {f.name for f in fields(cls)}, "sra.endpoints")
        return replace(cls(), **{k: str(v).rstrip("/") for k, v in values.items() if v})

    @classmethod
    def local(cls, base: str) -> Endpoints:
        """All services under one base URL (``/eutils``, ``/ena/portal/api``...): mirrors, tests."""
        base = base.rstrip("/")
        return cls(
            eutils=f"{base}/eutils",
            ena_portal=f"{base}/ena/portal/api",
            ena_browser=f"{base}/ena/browser/api",
            ena_fastq=f"{base}/ena/fastq",
        )


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 4  # extra attempts after the first
    backoff_s: float = 2.0  # first wait; doubles each time
    max_backoff_s: float = 60.0
    timeout_s: float = 60.0  # total per request (connect to last byte); per stall for FASTQ bodies

    def waits(self) -> list[float]:
        return [min(self.backoff_s * 2**i, self.max_backoff_s) for i in range(self.retries)]


# Status codes worth retrying: rate limits and server-side trouble. 4xx otherwise is an answer.
RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
TRANSIENT = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


class RetryableStatus(requests.RequestException):
    """An HTTP status that should be retried (raised internally)."""


# Connection failures that no wait cures: the name does not resolve (offline, no DNS, a typo in
# sra.endpoints), there is no route, or nothing listens. Retrying these only delays the error by
# the whole backoff (4 retries: ~62 s per accession).
_PERMANENT_ERRNO = {errno.ECONNREFUSED, errno.ENETUNREACH, errno.EHOSTUNREACH}


def permanent_reason(exc: BaseException) -> str | None:
    """Why ``exc`` (a requests/urllib3 connection error) will fail again at once, or None when
    it may be transient (timeout, reset, cut body, 5xx). Walks the wrapped causes, since
    requests -> urllib3 -> socket each wrap the one below."""
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        e = stack.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, socket.gaierror):
            return f"host name does not resolve ({e.strerror or e}): no network/DNS, or a wrong host name"
        if type(e).__name__ == "NameResolutionError":  # urllib3 >= 2 (wraps the gaierror)
            return "host name does not resolve: no network/DNS, or a wrong host name"
        if isinstance(e, OSError) and e.errno in _PERMANENT_ERRNO:
            return {errno.ECONNREFUSED: "connection refused (nothing listens on that host/port)",
                    errno.ENETUNREACH: "network unreachable (no route)",
                    errno.EHOSTUNREACH: "host unreachable (no route)"}[e.errno]
        for nxt in (e.__cause__, e.__context__, getattr(e, "reason", None), *getattr(e, "args", ())):
            if isinstance(nxt, BaseException):
                stack.append(nxt)
    return None


def session() -> requests.Session:
    from bulkfm.common.deadline import mount

    s = requests.Session()
    s.headers["User-Agent"] = USER_AGENT
    return mount(s)  # requests made inside total_deadline() get a total deadline, not per read


def with_retries(
    fn: Callable[[], T],
    policy: RetryPolicy,
    what: str,
    retry_on: tuple[type[BaseException], ...] = TRANSIENT + (RetryableStatus,),
) -> T:
    """Call ``fn`` until it succeeds, retrying ``retry_on`` errors with exponential backoff.

    ``what`` names the request for messages ("NCBI efetch for SRP123456").
    """
    waits = policy.waits()
    for attempt in range(len(waits) + 1):
        try:
            return fn()
        except retry_on as exc:
            permanent = permanent_reason(exc)
            if permanent:
                raise NetworkError(
                    f"{what} failed: {permanent}; not retried ({_short(exc)}). {NETWORK_FIX}"
                ) from exc
            if attempt == len(waits):
                raise NetworkError(
                    f"{what} failed after {attempt + 1} attempts: {_short(exc)}. {NETWORK_FIX}"
                ) from exc
            log.warning("%s failed (%s); retry %d/%d in %.1fs", what, _short(exc), attempt + 1, len(waits), waits[attempt])
            time.sleep(waits[attempt])
    raise AssertionError("unreachable")


def get(
    sess: requests.Session,
    url: str,
    policy: RetryPolicy,
    what: str,
    params: Mapping[str, Any] | None = None,
    method: str = "GET",
) -> requests.Response:
    """GET (or POST) with retries; returns the response for any non-retryable status."""

    def once() -> requests.Response:
        kw: dict[str, Any] = {"timeout": policy.timeout_s}
        if method == "POST":
            kw["data"] = params
        else:
            kw["params"] = params
        with total_deadline(policy.timeout_s, f"{what} ({redact(url)})"):  # headers + body
            r = sess.request(method, url, **kw)
            if r.status_code in RETRY_STATUS:
                raise RetryableStatus(f"HTTP {r.status_code} from {redact(r.url)}")
            _ = r.content  # read the body inside the retry loop (a cut body is retried)
        return r

    return with_retries(once, policy, what)


def redact(url: str) -> str:
    """URL without its query string (which may hold an API key)."""
    return url.split("?", 1)[0]


_KEY = re.compile(r"(api_key=)[^&\s'\"]+")


def _short(exc: BaseException) -> str:
    text = _KEY.sub(r"\1***", f"{type(exc).__name__}: {exc}")
    return text if len(text) <= 300 else text[:297] + "..."
