"""fetch-proteins against a real HTTP server on 127.0.0.1 (the only network it ever uses)."""

from __future__ import annotations

import gzip
import http.server
import threading
from pathlib import Path

import pytest

from bulkfm.cli import main
from bulkfm.embed.proteins import read_fasta


@pytest.fixture()
def server(tmp_path, shared_data):
    root = tmp_path / "www"
    root.mkdir()
    src = shared_data / "human_proteins_subset/gene_protein_subset.fasta.gz"
    (root / "pc_translations.fa.gz").write_bytes(src.read_bytes())
    (root / "page.fa.gz").write_bytes(gzip.compress(b"<html>not found</html>"))

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(root), **kw)

        def log_message(self, *args):  # keep pytest output clean
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_fetch_proteins(server, tmp_path: Path, capsys):
    out = tmp_path / "res" / "proteins.fa.gz"
    assert main(["fetch-proteins", "--url", f"{server}/pc_translations.fa.gz",
                 "-o", str(out)]) == 0
    assert sum(1 for _ in read_fasta(out)) == 968
    bad = tmp_path / "bad.fa.gz"
    assert main(["fetch-proteins", "--url", f"{server}/page.fa.gz", "-o", str(bad)]) == 2
    assert "FASTA header" in capsys.readouterr().err and not bad.exists()
    assert main(["fetch-proteins", "--url", f"{server}/missing.fa.gz", "--retries",
                 "1", "-o", str(bad)]) == 2
    assert "404" in capsys.readouterr().err and not bad.exists()
    assert main(["fetch-proteins", "--url", "file:///etc/passwd", "-o", str(bad)]) == 2
