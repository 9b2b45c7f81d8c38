"""Helpers for the security suite. Hostile names: paths holding command substitution, ';', quotes and
spaces, and a marker file that exists only if one of them was ever run by a shell."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


# The marker's path comes from the environment, so that a name holds no '/' yet names it.
SUBST = '$(touch "$BULKFM_PWNED"); `touch "$BULKFM_PWNED"`'


def hostile(base: Path, stem: str) -> Path:
    """``base/<stem> $(touch "$BULKFM_PWNED"); `...`; x'y"z``: substitutions, ';', quotes, spaces."""
    return base / f"{stem} {SUBST}; x'y\"z"


def snakemake_cmd(*args: str, marker: Path, check: bool = True) -> subprocess.CompletedProcess:
    """Run snakemake in the checkout; a shell that runs a hostile name creates ``marker``."""
    exe = Path(sys.executable).with_name("snakemake")
    proc = subprocess.run([str(exe), *args], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "PYTHONUNBUFFERED": "1", "BULKFM_PWNED": str(marker)})
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


class DripServer:
    """An HTTP server on 127.0.0.1 that answers every request by sending ``head`` (status line and
    headers) and then ``body`` one byte every ``interval`` seconds, or, with ``drip_head``, the
    head itself a byte at a time. It stops dripping when the client goes away."""

    def __init__(self, body: bytes = b"x" * 100000, interval: float = 0.05, drip_head: bool = False,
                 content_type: str = "application/octet-stream") -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _drip(self):
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                server.requests += 1
                head = (f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n"
                        f"Content-Length: {len(body)}\r\n\r\n").encode()
                out = (head if drip_head else b"") + body
                if not drip_head:
                    self.wfile.write(head)
                try:
                    for i in range(len(out)):
                        self.wfile.write(out[i:i + 1])
                        self.wfile.flush()
                        if server.stop.wait(interval):
                            return
                except OSError:  # the client gave up: what the test wants
                    return

            do_GET = do_POST = _drip  # noqa: N815

        self.requests = 0
        self.stop = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()
