"""One place that decides when two gene identifiers name the same gene.

The matrix, the graph and the embeddings may spell a gene differently: TCGA writes
``SYMBOL|ENTREZ`` (``TP53|7157``), GENCODE writes versioned Ensembl ids
(``ENSG00000141510.17``), a bulkfm store writes unversioned ones, protein FASTAs name symbols.
Loaders match by exact id first and fall back to :func:`normalize_gene_id` on both sides, using
a fallback key only when it is unique (two TCGA rows share some symbols; guessing would silently
give one gene the other's neighbours).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

log = logging.getLogger(__name__)

_ENSEMBL_VERSIONED = re.compile(r"^(ENS[A-Z]*[GTP]\d+)\.\d+(_PAR_Y)?$", re.IGNORECASE)
_UNKNOWN_SYMBOLS = {"", "?", "-", "NA", "NAN", "NONE"}


def normalize_gene_id(gene: str) -> str | None:
    """The key two spellings of one gene share, or None when there is no usable key.

    ``TP53|7157`` -> ``TP53``; ``?|100130426`` -> None (TCGA's unknown symbol is not unique);
    ``ENSG00000141510.17`` -> ``ENSG00000141510``; symbols are upper-cased (human HGNC symbols
    are unique regardless of case: ``C1orf112`` and ``C1ORF112`` are one gene).
    ``ENSG..._PAR_Y`` (GENCODE's copy in the Y pseudo-autosomal region) keeps its suffix so it
    does not collide with the X copy.
    """
    g = gene.strip()
    if "|" in g:
        g = g.split("|", 1)[0].strip()
    m = _ENSEMBL_VERSIONED.match(g)
    if m:
        g = m.group(1) + (m.group(2) or "")
    g = g.upper()
    return None if g in _UNKNOWN_SYMBOLS else g


@dataclass(frozen=True)
class GeneMatch:
    """``index[i]`` = position in the reference of query gene i, or -1 when it has none."""

    index: list[int]
    n_exact: int
    n_normalized: int
    n_ambiguous: int  # query genes whose fallback key names several reference genes

    @property
    def n_missing(self) -> int:
        return sum(1 for i in self.index if i < 0)


def match_genes(
    query: Sequence[str],
    reference: Sequence[str],
    reference_aliases: Sequence[Sequence[str]] | None = None,
    query_aliases: Sequence[Sequence[str]] | None = None,
) -> GeneMatch:
    """Find each query gene in the reference: exact id, else a unique normalised key.

    ``reference_aliases[j]`` are extra names of reference gene j (e.g. its symbol and Ensembl
    id); ``query_aliases[i]`` likewise for query gene i (e.g. a store's ``gene_names``).
    """
    exact = {g: j for j, g in enumerate(reference)}
    by_key: dict[str, set[int]] = {}
    for j, g in enumerate(reference):
        names = [g, *(reference_aliases[j] if reference_aliases is not None else ())]
        for name in names:
            key = normalize_gene_id(str(name)) if name is not None else None
            if key is not None:
                by_key.setdefault(key, set()).add(j)
    index: list[int] = []
    n_exact = n_norm = n_amb = 0
    for i, g in enumerate(query):
        if g in exact:
            index.append(exact[g])
            n_exact += 1
            continue
        names = [g, *(query_aliases[i] if query_aliases is not None else ())]
        found = -1
        ambiguous = False
        for name in names:
            key = normalize_gene_id(str(name)) if name is not None else None
            hits = by_key.get(key, set()) if key is not None else set()
            if len(hits) == 1:
                found = next(iter(hits))
                break
            ambiguous |= len(hits) > 1
        if found >= 0:
            n_norm += 1
        elif ambiguous:
            n_amb += 1
        index.append(found)
    return GeneMatch(index=index, n_exact=n_exact, n_normalized=n_norm, n_ambiguous=n_amb)
