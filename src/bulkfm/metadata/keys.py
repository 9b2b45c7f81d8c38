"""Step (a): raw attribute keys -> harmonized fields, data-driven.

The alias table (resources/metadata/key_aliases.tsv) names the usual keys; anything else is
matched by (1) dropping wrapper words ('characteristics', 'sample', 'donor' ...), (2) the longest
alias contained as whole words ('tissue_source_site' -> tissue), (3) edit-distance similarity for
typos ('tisue', 'celltyp'). Short keys match exactly only: 'page' must not become 'age'.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import lru_cache

from bulkfm.metadata.ontology import norm
from bulkfm.metadata.resources import key_aliases, text_keys

_WRAPPERS = {"characteristics", "characteristic", "ch1", "sample", "samples", "donor", "patient",
             "subject", "host", "individual", "biosample", "original", "the", "of", "s"}
FUZZY_CUTOFF = 0.85
CONTAINS_PENALTY = 0.85


@dataclass(frozen=True, slots=True)
class KeyMatch:
    field: str | None  # harmonized field, or None
    weight: float  # how sure the key names the field (the value must map when < 0.9)
    how: str  # 'alias' | 'wrapper' | 'contains' | 'fuzzy' | 'text' | 'none'


@lru_cache(maxsize=20000)
def match_key(raw_key: str, resources: str | None = None) -> KeyMatch:
    aliases = key_aliases(resources)
    key = norm(raw_key)
    if key in aliases:
        f, w = aliases[key]
        return KeyMatch(f, w, "alias")
    if key in text_keys(resources):
        return KeyMatch(None, 0.0, "text")
    words = [w for w in key.split() if w not in _WRAPPERS]
    core = " ".join(words)
    if core and core in aliases:
        f, w = aliases[core]
        return KeyMatch(f, w, "wrapper")
    if core in text_keys(resources):
        return KeyMatch(None, 0.0, "text")
    # longest alias phrase contained as whole words
    padded = f" {core} "
    best = max((a for a in aliases if f" {a} " in padded), key=len, default=None)
    if best is not None:
        f, w = aliases[best]
        return KeyMatch(f, w * CONTAINS_PENALTY, "contains")
    if len(core) >= 5:
        close = difflib.get_close_matches(core, [a for a in aliases if len(a) >= 4], n=1, cutoff=FUZZY_CUTOFF)
        if close:
            f, w = aliases[close[0]]
            ratio = difflib.SequenceMatcher(None, core, close[0]).ratio()
            return KeyMatch(f, w * ratio, "fuzzy")
    return KeyMatch(None, 0.0, "none")
