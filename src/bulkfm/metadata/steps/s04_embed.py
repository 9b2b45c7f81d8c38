"""Step 4: the nearest terms in meaning (sentence embedding) for values still open after exact
lookup, batched over all unique sets of a chunk."""

from __future__ import annotations

from bulkfm.metadata.confidence import CONF
from bulkfm.metadata.embedding import Embedder
from bulkfm.metadata.records import Candidate, Candidates, Pending
from bulkfm.metadata.schema import FIELD_ONTOLOGIES
from bulkfm.metadata.steps import Tools


def embed_pending(tools: Tools, embedder: Embedder, ontologies: tuple[str, ...], candidates: int,
                  min_cosine: float, cands: list[Candidates], pendings: list[list[Pending]]) -> int:
    """Add an embedding candidate per open value with a near enough allowed term (its hits kept
    on the Pending for the LLM and the review queue); returns the number of unique queries."""
    # a value that is a cell line's name ('THP-1', 'H1' under 'cell type') means nothing to a
    # sentence model: nearest neighbours in meaning would be noise
    todo = [(i, p) for i, ps in enumerate(pendings) for p in ps
            if FIELD_ONTOLOGIES[p.field][0] in ontologies
            and not (p.field != "cell_line" and tools.matcher.lookup("cell_line", p.raw))]
    if not todo:
        return 0
    embedder.prefetch([p.raw for _, p in todo])
    for i, p in todo:
        hits = [h for h in embedder.query(p.raw, FIELD_ONTOLOGIES[p.field][0], k=candidates)
                if h[2] >= min_cosine and tools.matcher.allowed(p.field, h[0])]
        if hits:
            cands[i][p.field].append(embedding_candidate(tools, p, hits, cands[i][p.field]))
            p.embedding_hits = hits
    return len({(p.field, p.raw) for _, p in todo})


def embedding_candidate(tools: Tools, p: Pending, hits: list[tuple[str, str, float]],
                        found: list[Candidate]) -> Candidate:
    """The nearest term, surer by its cosine and its lead over the runner-up."""
    tid, _, cos = hits[0]
    margin = cos - (hits[1][2] if len(hits) > 1 else 0.0)
    conf = (min(CONF.embedding_cap, CONF.embedding_base + CONF.embedding_cosine * cos
                + min(CONF.embedding_margin, margin)) * min(1.0, p.weight + CONF.key_bonus))
    lexical = [c.id for c in found if c.source == p.source and c.method == "lexicon" and c.id]
    if lexical and not any(tools.index.is_a(tid, x) or tools.index.is_a(x, tid) for x in lexical):
        # a term named inside the value outranks a neighbour in meaning that disagrees
        # ('Peripheral blood monocytes': monocyte, not PBMC)
        conf *= CONF.embedding_disagrees
    return Candidate(tid, tools.index.label(tid), p.source, "embedding", conf, p.raw)
