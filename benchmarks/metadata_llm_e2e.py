"""The LLM step end to end: ``bulkfm metadata harmonize`` with an OpenAI-compatible endpoint on
127.0.0.1, on the real SRA records of ../shared/data; calls per sample, and whether any answer
outside the candidates was accepted.

    python benchmarks/metadata_llm_e2e.py [--data ../shared/data] [--no-embedding] [--out DIR]

No package on the registries ships a small chat model runnable here (checked: llama-cpp-python
and the GGUF tools need weights fetched from a hub; none of the PyPI packages listed as "local
GGUF" carries one), so the endpoint is a scripted model speaking the real chat-completions
protocol (request: model, messages, response_format json_schema; response: choices[0].message
.content, usage). It answers 3 of 5 questions honestly (the candidate whose label shares most
words with the raw text) and 2 of 5 adversarially, chosen by a hash of the question: a real
ontology ID that was not offered, or an ID that does not exist. Every request and answer is
logged, and the harmonized table is checked against that log.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
# a real term of each ontology to offer where it was not a candidate (answer outside the candidates)
OUTSIDE = {"CL": ("CL:0000235", "CL:0000066"), "UBERON": ("UBERON:0002048", "UBERON:0002107"),
           "MONDO": ("MONDO:0004992", "MONDO:0005015"), "HsapDv": ("HsapDv:0000087", "HsapDv:0000088"),
           "CVCL": ("CVCL_0030", "CVCL_0031"), "PATO": ("PATO:0000461", "PATO:0000383")}


def _records():
    spec = importlib.util.spec_from_file_location("llm_calls", HERE / "metadata_llm_calls.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class ScriptedModel(BaseHTTPRequestHandler):
    log: list[dict] = []
    lock = threading.Lock()

    def log_message(self, *a):
        pass

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if not self.path.endswith("/chat/completions"):
            return self._send(404, {"error": {"message": f"no route {self.path}"}})
        user = json.loads(body["messages"][-1]["content"])
        cands = [(c["id"], c["label"]) for c in user["candidates"]]
        enum = body["response_format"]["json_schema"]["schema"]["properties"]["id"]["enum"]
        mode = int(hashlib.sha1(f"{user['field']}|{user['raw']}".encode()).hexdigest(), 16) % 5
        words = set(re.findall(r"[a-z0-9]+", user["raw"].lower()))
        if mode < 3:
            best = max(cands, key=lambda c: len(words & set(re.findall(r"[a-z0-9]+", c[1].lower()))))
            answer, kind = best[0], "honest"
        elif mode == 3:
            onto = cands[0][0].split(":")[0].split("_")[0] if cands else "CL"
            answer = next(t for t in OUTSIDE.get(onto, OUTSIDE["CL"]) if t not in enum)
            kind = "outside the candidates (real ID)"
        else:
            answer, kind = f"{cands[0][0].split(':')[0]}:9999999" if cands else "X:1", "not an ontology ID"
        with ScriptedModel.lock:
            ScriptedModel.log.append({"field": user["field"], "raw": user["raw"], "candidates": [c for c, _ in cands],
                                      "answer": answer, "kind": kind, "schema_enum": enum})
        content = json.dumps({"id": answer})
        return self._send(200, {"id": "scripted", "object": "chat.completion", "created": int(time.time()),
                                "model": body["model"],
                                "choices": [{"index": 0, "finish_reason": "stop",
                                             "message": {"role": "assistant", "content": content}}],
                                "usage": {"prompt_tokens": len(body["messages"][-1]["content"]) // 4,
                                          "completion_tokens": 8, "total_tokens": 0}})

    def _send(self, code: int, obj: dict) -> None:
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(HERE.parents[1] / "shared" / "data"))
    ap.add_argument("--no-embedding", action="store_true")
    ap.add_argument("--out", help="keep the inputs, outputs and request log here")
    args = ap.parse_args()
    mod = _records()
    data = Path(args.data)
    out = Path(args.out or tempfile.mkdtemp(prefix="llm_e2e_"))
    out.mkdir(parents=True, exist_ok=True)
    srv = ThreadingHTTPServer(("127.0.0.1", 0), ScriptedModel)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{srv.server_address[1]}/v1"
    rows = ["| records | samples | unique attribute sets | LLM calls | calls/sample | honest answers | answers outside "
            "the candidates | non-IDs | accepted LLM answers (fields) | accepted outside the candidates |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, recs in (("MetaSRA BioSample (dev)", mod.metasra(data)), ("ENA search, human runs", mod.ena(data))):
        tag = name.split()[0].lower()
        inp = out / f"{tag}.jsonl"
        inp.write_text("".join(json.dumps({"sample_id": r.sample_id, "attributes": r.attributes, **r.sra}) + "\n"
                               for r in recs))
        cfg = out / f"{tag}.yaml"
        cfg.write_text(json.dumps({"embedding": not args.no_embedding,
                                   "llm": {"base_url": base, "model": "scripted-chooser", "cache": str(out / f"llm_{tag}"),
                                           "max_retries": 1, "backoff_s": 0.01, "timeout_s": 20}}))
        ScriptedModel.log = []
        t0 = time.perf_counter()
        env = dict(os.environ, BULKFM_LLM_API_KEY="sk-local-not-secret")
        cmd = [str(Path(sys.executable).with_name("bulkfm")), "metadata", "harmonize", str(inp), "-o",
               str(out / f"{tag}.parquet"), "--config", str(cfg), "--llm-report", str(out / f"{tag}_report.json"),
               "--review", str(out / f"{tag}_review.tsv")]
        subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        secs = time.perf_counter() - t0
        rep = json.loads((out / f"{tag}_report.json").read_text())["llm"]
        log = list(ScriptedModel.log)
        (out / f"{tag}_requests.jsonl").write_text("".join(json.dumps(x) + "\n" for x in log))
        df = pd.read_parquet(out / f"{tag}.parquet")
        llm_rows = df[df.method == "llm"]
        offered = {(x["field"], c) for x in log for c in x["candidates"]}
        honest = {(x["field"], x["answer"]) for x in log if x["kind"] == "honest"}
        bad = {(x["field"], x["answer"]) for x in log if x["kind"] != "honest"}
        accepted = set(zip(llm_rows.field, llm_rows.ontology_id))
        outside = {a for a in accepted if a not in offered or (a in bad and a not in honest)}
        assert all(set(x["schema_enum"][:-1]) == set(x["candidates"]) for x in log), "schema enum != candidates"
        n_kind = {k: sum(x["kind"] == k for x in log) for k in ("honest", "outside the candidates (real ID)",
                                                                 "not an ontology ID")}
        rows.append(f"| {name} | {rep['samples']} | {len(set(r.set_key() for r in recs))} | {rep['calls']} | "
                    f"{rep['calls_per_sample']:.3f} | {n_kind['honest']} | {n_kind['outside the candidates (real ID)']} | "
                    f"{n_kind['not an ontology ID']} | {len(llm_rows)} | {len(outside)} |")
        print(f"{name}: {secs:.1f}s; rejected: {rep['rejected']}; answered {rep['answered']}, "
              f"none {rep['none_answers']}, retries {rep['retries']}", flush=True)
        if outside:
            print(f"  ACCEPTED OUTSIDE THE CANDIDATES: {sorted(outside)}")
    srv.shutdown()
    print(f"embedding: {'off' if args.no_embedding else 'on'}; endpoint {base} (scripted); files in {out}")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
