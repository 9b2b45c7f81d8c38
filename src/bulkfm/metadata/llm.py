"""Step (d): the LLM, only for what stays ambiguous, choosing among retrieved candidate IDs.

Any OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, llama.cpp) through the ``openai`` client,
structured output with a JSON schema whose properties are enums of the candidate IDs (+ null),
so a constrained decoder cannot even spell another ID; every answer is still validated here,
because not every server enforces schemas. Untrusted raw text goes into the user message as a
JSON string value, never into the instructions.

Cost control: one request per unique (field, raw text) question, answers cached on disk by
hash(base_url, model, prompt version, messages, schema), bounded concurrency, retries with exponential backoff for
429/5xx/timeouts/malformed JSON, a per-run call budget, and a report of calls, tokens and cost.
The API key is read from the environment and handed to the client only; it is never logged,
cached or written. The cache is not trusted either: a cached answer is validated exactly like a
fresh one (candidates, index, ontology, obsolete), and an entry that fails is deleted and the
question asked again, so an edited cache file cannot put an ID into the output.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from bulkfm.common.atomic import atomic_path
from bulkfm.common.deadline import total_deadline
from bulkfm.common.settings import check_keys
from bulkfm.metadata.ontology import TermIndex, cache_dir, prefix_of
from bulkfm.metadata.resources import prompt as load_prompt
from bulkfm.metadata.schema import FIELD_ONTOLOGIES

log = logging.getLogger(__name__)
MAX_RAW_CHARS = 2000  # a title longer than this is truncated before it reaches the model
# Part of every cache key: bump it when the request format or the way answers are read changes,
# so that answers given to an older prompt are not reused (the prompt text is keyed as well).
PROMPT_VERSION = 2


@dataclass(frozen=True)
class LLMConfig:
    base_url: str | None = None  # None: no LLM calls at all
    model: str = "gpt-4o-mini"
    api_key_env: tuple[str, ...] = ("BULKFM_LLM_API_KEY", "OPENAI_API_KEY")
    max_calls: int = 1000  # per run
    concurrency: int = 4
    timeout_s: float = 30.0  # total per request (connect to last byte), not per read
    run_timeout_s: float = 3600.0  # all LLM work of one run; questions left then are not asked
    max_retries: int = 3
    backoff_s: float = 1.0
    price_in_per_1k: float = 0.00015  # USD per 1k prompt tokens (for the estimate only)
    price_out_per_1k: float = 0.0006
    cache: str | None = None  # cache directory override

    @classmethod
    def from_dict(cls, d: dict | None) -> "LLMConfig":
        d = dict(d or {})
        if "api_key_env" in d and isinstance(d["api_key_env"], str):
            d["api_key_env"] = (d["api_key_env"],)
        check_keys(d, cls.__dataclass_fields__, "metadata.llm")
        return cls(**d)

    @property
    def enabled(self) -> bool:
        return bool(self.base_url)


@dataclass(frozen=True)
class Question:
    """One ambiguous field of one unique raw text, with its candidate IDs (best first)."""

    field: str
    raw: str
    candidates: tuple[tuple[str, str], ...]  # (id, label)


@dataclass
class LLMReport:
    enabled: bool = False
    model: str | None = None
    base_url: str | None = None
    questions: int = 0
    calls: int = 0
    cache_hits: int = 0
    retries: int = 0
    answered: int = 0
    none_answers: int = 0
    rejected: Counter = field(default_factory=Counter)  # reason -> count
    skipped_budget: int = 0
    skipped_deadline: int = 0  # questions not asked because run_timeout_s had passed
    prompt_tokens: int = 0
    completion_tokens: int = 0
    estimated_cost_usd: float = 0.0
    samples: int = 0
    calls_per_sample: float = 0.0

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d["rejected"] = dict(self.rejected)
        return d


def response_schema(q: Question) -> dict:
    return {
        "type": "object",
        "properties": {"id": {"type": ["string", "null"], "enum": [c for c, _ in q.candidates] + [None]}},
        "required": ["id"],
        "additionalProperties": False,
    }


def messages_for(q: Question, system_prompt: str) -> list[dict]:
    user = {
        "field": q.field,
        "raw": q.raw[:MAX_RAW_CHARS],
        "candidates": [{"id": c, "label": lab} for c, lab in q.candidates],
    }
    return [{"role": "system", "content": system_prompt}, {"role": "user", "content": json.dumps(user)}]


class LLMChooser:
    def __init__(self, config: LLMConfig, index: TermIndex, resources: str | None = None) -> None:
        self.config = config
        self.index = index
        self.system_prompt = load_prompt(resources)
        self.report = LLMReport(enabled=config.enabled, model=config.model if config.enabled else None,
                                base_url=config.base_url)
        self.cache = cache_dir(config.cache) / "llm"
        self._lock = threading.Lock()
        self._client = None
        self._run_end = float("inf")  # monotonic time after which no question is asked

    # ---------------------------------------------------------------- client
    def _api_key(self) -> str:
        for name in self.config.api_key_env:
            if os.environ.get(name):
                return os.environ[name]
        # local servers (vLLM, Ollama, llama.cpp) accept any key; the client needs a non-empty one
        return "no-key"

    @property
    def client(self):
        if self._client is None:
            import openai

            import httpx2

            from bulkfm.common.deadline import httpx_transport

            # per-read timeouts alone let a server dripping a byte a second hold a request
            # forever: the transport also enforces the total deadline _ask sets per request
            http = httpx2.Client(transport=httpx_transport(), timeout=self.config.timeout_s)
            self._client = openai.OpenAI(base_url=self.config.base_url, api_key=self._api_key(),
                                         timeout=self.config.timeout_s, max_retries=0, http_client=http)
        return self._client

    # ---------------------------------------------------------------- answers
    def validate(self, q: Question, content: str | None) -> tuple[str | None, str | None]:
        """(chosen id or None, rejection reason or None) for a raw model answer."""
        if content is None:
            return None, "empty answer"
        try:
            data = json.loads(content)
        except (json.JSONDecodeError, TypeError):
            return None, "malformed JSON"
        if not isinstance(data, dict) or "id" not in data:
            return None, "answer does not match the schema"
        tid = data["id"]
        if tid is None:
            return None, None
        if not isinstance(tid, str):
            return None, "id is not a string"
        if tid not in {c for c, _ in q.candidates}:
            return None, "id not among the candidates"
        term = self.index.get(tid)
        if term is None:
            return None, "id not in the ontology index"
        if prefix_of(tid) not in FIELD_ONTOLOGIES.get(q.field, ()):
            return None, "id from another ontology"
        if term.obsolete:
            return None, "obsolete id"
        return tid, None

    def _cache_path(self, messages: list[dict], schema: dict) -> Path:
        """One file per (endpoint, model, prompt version, question): another server or model
        never answers from this one's cache. The messages hold the field, raw text and candidates."""
        key = hashlib.sha256(json.dumps({"base_url": (self.config.base_url or "").rstrip("/"),
                                         "model": self.config.model, "prompt_version": PROMPT_VERSION,
                                         "messages": messages, "schema": schema},
                                        sort_keys=True).encode()).hexdigest()
        return self.cache / key[:2] / f"{key}.json"

    def _cached(self, q: Question, path: Path) -> tuple[bool, str | None]:
        """(hit, id) from the cache; an entry that fails validation is deleted (asked again)."""
        try:
            cached = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            reason = "unreadable"
        else:
            if not isinstance(cached, dict) or cached.get("field") != q.field:
                reason = "answer does not match the schema"
            else:
                tid, reason = self.validate(q, json.dumps({"id": cached.get("id")}))
                if reason is None:
                    with self._lock:
                        self.report.cache_hits += 1
                    return True, tid
        with self._lock:
            self.report.rejected[f"cached answer: {reason}"] += 1
        log.warning("LLM cache entry %s for field %s rejected (%s): deleted, asking again", path.name, q.field, reason)
        path.unlink(missing_ok=True)
        return False, None

    def _ask(self, q: Question) -> tuple[Question, str | None]:
        schema = response_schema(q)
        messages = messages_for(q, self.system_prompt)
        path = self._cache_path(messages, schema)
        if path.is_file():
            hit, tid = self._cached(q, path)
            if hit:
                return q, tid
        if not self._admit():
            return q, None
        attempt = 0
        while True:
            left = self._run_end - time.monotonic()
            if left <= 0:
                with self._lock:
                    self.report.skipped_deadline += 1
                log.warning("LLM run deadline (run_timeout_s=%gs) passed: field %s not asked",
                            self.config.run_timeout_s, q.field)
                return q, None
            tid, reason, retryable = self._attempt(q, messages, schema, left)
            if reason is None:
                with atomic_path(path) as tmp:  # only validated answers are cached
                    tmp.write_text(json.dumps({"id": tid, "field": q.field}))
                return q, tid
            if retryable and attempt < self.config.max_retries:
                attempt += 1
                with self._lock:
                    self.report.retries += 1
                log.info("LLM %s for field %s: retry %d/%d", reason, q.field, attempt, self.config.max_retries)
                time.sleep(self.config.backoff_s * 2 ** (attempt - 1))
                continue
            with self._lock:
                self.report.rejected[reason] += 1
            log.warning("LLM answer for field %s rejected: %s", q.field, reason)
            return q, None

    def _admit(self) -> bool:
        """Whether one more call fits the run's deadline and call budget (counted if so)."""
        with self._lock:
            if time.monotonic() >= self._run_end:
                self.report.skipped_deadline += 1
                return False
            if self.report.calls >= self.config.max_calls:
                self.report.skipped_budget += 1
                return False
            self.report.calls += 1
        return True

    def _attempt(self, q: Question, messages: list[dict], schema: dict,
                 left: float) -> tuple[str | None, str | None, bool]:
        """One request: (validated id, None, _) or (None, why it failed, whether to retry)."""
        import openai

        try:
            with total_deadline(min(self.config.timeout_s, left), "LLM request"):
                resp = self.client.chat.completions.create(
                    model=self.config.model,
                    messages=messages,
                    temperature=0,
                    response_format={"type": "json_schema",
                                     "json_schema": {"name": "ontology_choice", "strict": True, "schema": schema}},
                )
            usage = getattr(resp, "usage", None)
            with self._lock:
                if usage is not None:
                    self.report.prompt_tokens += int(getattr(usage, "prompt_tokens", 0) or 0)
                    self.report.completion_tokens += int(getattr(usage, "completion_tokens", 0) or 0)
            content = resp.choices[0].message.content if resp.choices else None
            tid, reason = self.validate(q, content)
            if reason is None:
                return tid, None, False
            return None, reason, reason in ("malformed JSON", "empty answer", "answer does not match the schema")
        except openai.RateLimitError:
            return None, "HTTP 429", True
        except openai.APITimeoutError:
            return None, "timeout", True
        except openai.APIConnectionError:
            return None, "connection error", True
        except openai.APIStatusError as exc:
            return None, f"HTTP {exc.status_code}", exc.status_code >= 500
        except (ValueError, TypeError, AttributeError, IndexError) as exc:  # a body the client cannot parse
            return None, f"unreadable response ({type(exc).__name__})", True

    def choose(self, questions: list[Question]) -> dict[Question, str | None]:
        """Answers for unique questions (None: no answer or rejected)."""
        questions = list(dict.fromkeys(questions))
        self.report.questions += len(questions)
        if not self.config.enabled or not questions:
            return {}
        if self._run_end == float("inf"):  # the run's clock starts at its first question
            self._run_end = time.monotonic() + self.config.run_timeout_s
        out: dict[Question, str | None] = {}
        pool = ThreadPoolExecutor(max_workers=max(1, self.config.concurrency))
        try:
            for q, tid in pool.map(self._ask, questions):
                out[q] = tid
                if tid is None:
                    self.report.none_answers += 1
                else:
                    self.report.answered += 1
        finally:  # on SIGTERM/Ctrl-C: drop the questions not started (running ones end by their deadline)
            pool.shutdown(wait=True, cancel_futures=True)
        r = self.report
        r.estimated_cost_usd = round(r.prompt_tokens / 1000 * self.config.price_in_per_1k
                                     + r.completion_tokens / 1000 * self.config.price_out_per_1k, 6)
        return out
