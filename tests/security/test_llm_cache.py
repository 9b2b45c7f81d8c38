"""Cached LLM answers are not trusted (issue 16, item 2): an edited cache entry is validated like a
fresh answer, rejected, deleted and asked again; the cache is keyed by endpoint, model and prompt
version. The real ``openai`` client talks to an OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bulkfm.metadata.llm import LLMConfig
from bulkfm.metadata.pipeline import Harmonizer, RawRecord, Settings

RAW = "mixture of CD4 T cells and a few macrophage"


class ChoosingLLM(BaseHTTPRequestHandler):
    """Answers the candidate whose label holds ``ChoosingLLM.want`` (or null); counts calls."""

    calls = 0
    want = "macrophage"

    def log_message(self, *a):
        pass

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        ChoosingLLM.calls += 1
        cands = json.loads(body["messages"][-1]["content"])["candidates"]
        pick = next((c["id"] for c in cands if ChoosingLLM.want and ChoosingLLM.want in c["label"]), None)
        data = json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                           "choices": [{"index": 0, "finish_reason": "stop",
                                        "message": {"role": "assistant", "content": json.dumps({"id": pick})}}],
                           "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture()
def llm_http():
    ChoosingLLM.calls, ChoosingLLM.want = 0, "macrophage"
    srv = ThreadingHTTPServer(("127.0.0.1", 0), ChoosingLLM)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv, f"http://127.0.0.1:{srv.server_address[1]}/v1"
    srv.shutdown()
    srv.server_close()


@pytest.fixture()
def llm_server(llm_http):
    return llm_http[1]


def harmonize(index, base_url, cache, model="test-model"):
    cfg = LLMConfig(base_url=base_url, model=model, backoff_s=0.01, timeout_s=2, max_retries=0, cache=str(cache))
    harm = Harmonizer(index, Settings(embedding=False, llm_threshold=0.99, review_threshold=0.99), cfg)
    (_, fields), = list(harm.harmonize([RawRecord("S0", {"cell type": RAW})]))
    return harm, fields["cell_type"]


def entries(cache):
    return sorted((cache / "llm").rglob("*.json"))


@pytest.mark.parametrize("tampered", [{"id": "CL:9999999", "field": "cell_type"},  # not a term
                                      {"id": "UBERON:0002048", "field": "cell_type"},  # real, other ontology
                                      {"id": "CL:0000084", "field": "cell_type"},  # real CL, not a candidate
                                      {"id": ["CL:0000235"], "field": "cell_type"},
                                      "not json"])
def test_edited_cache_entry_is_rejected_and_asked_again(index, llm_server, tmp_path, tampered):
    cache = tmp_path / "cache"
    _, first = harmonize(index, llm_server, cache)
    assert first.method == "llm" and first.ontology_id == "CL:0000235" and ChoosingLLM.calls == 1
    (entry,) = entries(cache)
    entry.write_text(tampered if isinstance(tampered, str) else json.dumps(tampered))

    ChoosingLLM.want = None  # the model now answers null: nothing may come from the edited entry
    harm, fv = harmonize(index, llm_server, cache)
    rep = harm.llm.report
    assert rep.cache_hits == 0 and ChoosingLLM.calls == 2  # rejected, then asked again
    assert sum(n for r, n in rep.rejected.items() if r.startswith("cached answer")) == 1
    assert fv.method != "llm" and fv.ontology_id != "CL:9999999"
    assert fv.ontology_id is None or index.get(fv.ontology_id) is not None
    assert "cell_type" in {f for f, _ in harm.review}  # the field goes to a curator
    (entry,) = entries(cache)  # the edited entry was replaced by the model's new (null) answer
    assert json.loads(entry.read_text())["id"] is None


def test_edited_cache_entry_without_a_server_goes_to_review(index, llm_http, tmp_path):
    srv, url = llm_http
    cache = tmp_path / "cache"
    harmonize(index, url, cache)
    (entry,) = entries(cache)
    entry.write_text(json.dumps({"id": "CL:9999999", "field": "cell_type"}))
    srv.shutdown()  # the same endpoint (same cache key), now down: the edited answer is all there is
    srv.server_close()
    harm, fv = harmonize(index, url, cache)
    assert harm.llm.report.rejected["cached answer: id not among the candidates"] == 1
    assert fv.method != "llm" and fv.ontology_id != "CL:9999999" and fv.confidence < 0.75
    assert "cell_type" in {f for f, _ in harm.review}


def test_cache_is_keyed_by_endpoint_and_model(index, llm_server, tmp_path):
    cache = tmp_path / "cache"
    harmonize(index, llm_server, cache)
    harm, _ = harmonize(index, llm_server, cache)
    assert harm.llm.report.cache_hits == 1 and ChoosingLLM.calls == 1
    harm, _ = harmonize(index, llm_server, cache, model="another-model")
    assert harm.llm.report.cache_hits == 0 and ChoosingLLM.calls == 2
    other = llm_server.replace("127.0.0.1", "localhost")  # the same server under another base_url
    harm, _ = harmonize(index, other, cache)
    assert harm.llm.report.cache_hits == 0 and ChoosingLLM.calls == 3
    assert len(entries(cache)) == 3
