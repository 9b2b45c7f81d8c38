"""A local HTTP server on 127.0.0.1 that replays real recorded NCBI/ENA responses.

The bulkfm client code runs unchanged; only ``Endpoints`` point here. Bodies come byte for byte
from ../shared/data/sra_metadata_raw (pysradb and ffq test fixtures, the ENA filereport of
PRJEB18997). Where no recorded response exists, the server says so by answering what the real
service answers for an unknown accession (404, or an esearch with count 0), except for these
constructed envelopes, each around real content:

- esearch db=sra: NCBI's answer to esearch was not recorded, only the efetch body it leads to
  (``sra_test.xml.gz``: 87 EXPERIMENT_PACKAGEs from 10 C. elegans studies; and the ERS3331676
  package). The server answers esearch with count/querykey/WebEnv pointing at the recorded
  efetch body that contains the term; efetch then returns those real bytes unchanged (all
  packages, like NCBI does for a broad text match: the client must keep only its own).
- esearch/esummary db=gds for GSM3717978: ffq recorded only the inner esummary record; it is
  served inside the standard ``{"result": {"uids": [...], uid: record}}`` envelope.
- ENA browser XML for several ids at once: the real single-record bodies, combined under one
  ``*_SET`` root (ENA's batch answer shape).

``faults`` injects failures per prefix of the raw request path (query included, e.g.
``/ena/portal/api/filereport?accession=PRJEB18997``), consumed in order: ``"500"``, ``"close"`` (drop
the connection without an answer), ``"cut:N"`` (announce the full length, send N body bytes,
drop the connection), ``"flip:N"`` (send the body with byte N changed: a corrupt transfer).
"""

from __future__ import annotations

import gzip
import json
import re
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit


def _read(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.suffix == ".gz" else data


class Recorded:
    def __init__(self, raw: Path) -> None:
        ffq, pys, fr = raw / "ffq_fixtures", raw / "pysradb_test_search", raw / "ena_filereport"
        self.efetch = {
            "sra_test": _read(pys / "sra_test.xml.gz"),
            "ERS3331676": _read(pys / "sra_test_ERS3331676.xml"),
        }
        self.gds_search = {"GSE93374": _read(ffq / "GSE93374_search.txt")}
        self.gds_summary = {"200093374": _read(ffq / "GSE93374_summary.txt")}
        inner = json.loads(_read(ffq / "GSM3717978_summary.txt"))
        for uid, rec in inner.items():  # constructed envelope around the real record
            self.gds_summary[uid] = json.dumps(
                {"header": {"type": "esummary", "version": "0.3"}, "result": {"uids": [uid], uid: {"uid": uid, **rec}}}
            ).encode()
            self.gds_search[rec["accession"]] = json.dumps(
                {"header": {"type": "esearch", "version": "0.3"},
                 "esearchresult": {"count": "1", "retmax": "1", "retstart": "0", "idlist": [uid]}}
            ).encode()
        self.filereport = {
            "PRJEB18997": _read(fr / "PRJEB18997_filereport.tsv.gz"),
            "SRR8426358": _read(ffq / "fastqs.txt"),
            "SRR6835844": _read(ffq / "bam.txt"),
        }
        self.xml: dict[str, bytes] = {}
        for name in ("SRR6835844", "SRR8426358", "SRX3517583", "SRS4237519", "SRP178136"):
            self.xml[name] = _read(ffq / f"{name}.txt")
        self.xml["SRX5692097"] = _read(ffq / "SRX5692097_xml.txt")
        self.xml["SRP096361"] = _read(ffq / "SRP096361_with_runlist.txt")


class ReplayServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, recorded: Recorded) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.recorded = recorded
        self.files: dict[str, bytes] = {}  # /ena/fastq/<path> -> bytes
        self.faults: dict[str, list[str]] = {}
        self.log: list[tuple[str, str, dict[str, str]]] = []
        self.ranges: list[str | None] = []  # Range header of each FASTQ request
        self.lock = threading.Lock()
        self.range_support = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def reset(self) -> None:
        with self.lock:
            self.files.clear()
            self.faults.clear()
            self.log.clear()
            self.ranges.clear()
            self.range_support = True

    def next_fault(self, path: str) -> str | None:
        with self.lock:
            for prefix, queue in self.faults.items():
                if path.startswith(prefix) and queue:
                    return queue.pop(0)
        return None

    def count(self, prefix: str) -> int:
        return sum(1 for _, p, _ in self.log if p.startswith(prefix))


class _Handler(BaseHTTPRequestHandler):
    server: ReplayServer

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def _handle(self, method: str) -> None:
        parts = urlsplit(self.path)
        params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        if method == "POST":
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
            params.update({k: v[-1] for k, v in parse_qs(body).items()})
        path = unquote(parts.path)
        self.server.log.append((method, path, params))
        fault = self.server.next_fault(self.path)  # prefix of the raw path, query included
        if fault == "500":
            return self._send(500, b"<html>Internal Server Error</html>", "text/html")
        if fault == "close":
            self.close_connection = True
            self.connection.shutdown(2)
            return None
        cut = int(fault.split(":")[1]) if fault and fault.startswith("cut:") else None
        status, body, ctype = self._route(path, params)
        if fault and fault.startswith("flip:"):
            i = int(fault.split(":")[1])
            body = body[:i] + bytes([body[i] ^ 0xFF]) + body[i + 1 :]
        if status == 200 and path.startswith("/ena/fastq/"):
            self.server.ranges.append(self.headers.get("Range"))
            return self._send_file(body, cut)
        return self._send(status, body, ctype, cut)

    def _route(self, path: str, p: dict[str, str]) -> tuple[int, bytes, str]:
        rec = self.server.recorded
        js = "application/json"
        if path == "/eutils/esearch.fcgi":
            term = p.get("term", "")
            if p.get("db") == "gds":
                acc = term.split("[")[0].strip()
                if acc in rec.gds_search:
                    return 200, rec.gds_search[acc], js
                return 200, _esearch([], None), js
            for key, body in rec.efetch.items():
                hits = body.count(f'accession="{term}"'.encode()) + body.count(f">{term}<".encode())
                if term and hits:
                    return 200, _esearch(["0"] * 1, key), js
            return 200, _esearch([], None), js
        if path == "/eutils/efetch.fcgi":
            key = p.get("WebEnv", "")
            if key in rec.efetch:
                return 200, rec.efetch[key], "text/xml"
            return 400, b'{"error":"Unknown WebEnv"}', js
        if path == "/eutils/esummary.fcgi":
            uid = p.get("id", "")
            if uid in rec.gds_summary:
                return 200, rec.gds_summary[uid], js
            return 200, b'{"header":{"type":"esummary","version":"0.3"},"result":{"uids":[]}}', js
        if path == "/ena/portal/api/filereport":
            acc = p.get("accession", "")
            if acc in rec.filereport:
                return 200, rec.filereport[acc], "text/plain"
            return 404, b"", "text/plain"
        if path.startswith("/ena/browser/api/xml/"):
            ids = path.rsplit("/", 1)[1].split(",")
            bodies = [rec.xml[i] for i in ids if i in rec.xml]
            if not bodies:
                return 404, b"", "text/plain"
            if len(ids) == 1:
                return 200, bodies[0], "application/xml"
            return 200, _combine(bodies), "application/xml"
        if path.startswith("/ena/fastq/"):
            key = path[len("/ena/fastq") :]
            if key in self.server.files:
                return 200, self.server.files[key], "application/octet-stream"
            return 404, b"", "text/plain"
        return 404, b"", "text/plain"

    def _send(self, status: int, body: bytes, ctype: str, cut: int | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self._write(body, cut)

    def _write(self, body: bytes, cut: int | None) -> None:
        if cut is not None:
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.wfile.write(body)

    def _send_file(self, data: bytes, cut: int | None) -> None:
        rng = self.headers.get("Range")
        m = re.fullmatch(r"bytes=(\d+)-", rng or "")
        if m and self.server.range_support:
            start = int(m.group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = data[start:]
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            body = data
            self.send_response(200)
        self.send_header("Accept-Ranges", "bytes" if self.server.range_support else "none")
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self._write(body, cut)


def _esearch(ids: list[str], webenv: str | None) -> bytes:
    res: dict[str, object] = {"count": str(len(ids)), "retmax": str(len(ids)), "retstart": "0", "idlist": ids}
    if webenv:
        res.update(querykey="1", webenv=webenv)
    return json.dumps({"header": {"type": "esearch", "version": "0.3"}, "esearchresult": res}).encode()


def _combine(bodies: list[bytes]) -> bytes:
    roots = [ET.fromstring(b) for b in bodies]
    out = ET.Element(roots[0].tag)
    for r in roots:
        out.extend(list(r))
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(out)


@contextmanager
def serve(raw: Path) -> Iterator[ReplayServer]:
    server = ReplayServer(Recorded(raw))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
