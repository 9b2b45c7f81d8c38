"""Step (b): value normalisation and exact/synonym lookup, whole values and inside free text.

A whole raw value is looked up first (bundled lexicon, then ontology labels and synonyms, then
the value with wrapper words like 'cells', 'tissue', 'human' removed). Free text is scanned with
the longest-match n-grams of the same tables, with generic terms ('tissue', 'cell') and
organism-level terms ('female organism') left out so that they cannot win.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from dataclasses import dataclass

from bulkfm.metadata.ontology import TermIndex, compact, norm, singular
from bulkfm.metadata.resources import lexicon
from bulkfm.metadata.schema import FIELD_ONTOLOGIES

MAX_NGRAM = 7
# Words that wrap a value without changing what it names.
_WRAP_WORDS = {"human", "homo", "sapiens", "normal", "primary", "tissue", "tissues", "sample", "samples",
               "cells", "cell", "line", "derived", "isolated", "cultured", "total", "rna", "whole", "adult",
               "biopsy", "specimen", "of", "from", "the", "hs", "h", "donor", "patient"}
# Terms too generic to be an answer by themselves when found inside text.
_GENERIC = {norm(x) for x in (
    "tissue", "organ", "cell", "cells", "anatomical entity", "material anatomical entity", "multicellular organism",
    "organism", "body", "whole organism", "portion of tissue", "region", "part", "structure", "sample", "primary",
    "left", "right", "normal", "human", "homo sapiens", "anatomical structure", "organ part", "system", "cultured cell",
    "native cell", "disease", "syndrome", "disorder", "condition", "control", "mass", "lesion", "node", "line",
    "layer", "zone", "wall", "space", "unit", "fluid", "cavity", "surface", "process", "segment", "stage", "tip",
    "extract", "total", "rna", "dna", "protein", "unknown", "other", "stem", "stroma", "ring", "axis", "cluster",
    "group", "set", "all", "type", "cast", "culture", "media", "medium", "membrane", "vessel", "plate",
    "embryo", "fetus", "adult", "child", "infant", "compound organ", "skin", "muscle", "gland", "duct",
)}
# Life stages are not tissues. (Snapshot ancestors include part_of, so 'below multicellular
# organism' would exclude every organ; whole-organism terms are caught by organism_level().)
_EXCLUDE_UNDER = {"tissue": ("UBERON:0000105", "UBERON:0000000")}


def organism_level(index: TermIndex, tid: str) -> bool:
    """'female organism', 'adult organism', 'multicellular organism': sex/stage, not a tissue."""
    t = index.get(tid)
    return bool(t and t.ontology == "UBERON" and (tid == "UBERON:0000468" or t.label.endswith(" organism")))
# UBERON ranges of taxon-specific anatomy (2: teleost, 3: amphibian, 6: insect): never a human tissue
# ('papilla' is a zebrafish term; human papillae have their own IDs).
_NON_HUMAN_UBERON = ("UBERON:2", "UBERON:3", "UBERON:6")
_GLUED_CELL = re.compile(r"\b([a-z0-9]{1,6})cell(s?)\b")  # 'tcell', 'bcells', 'nkcell' (GEO-processed text)
_GLUED_DERIVED = re.compile(r"\b([a-z]{3,})(derived)\b")  # GEO text drops hyphens: "brainderived"
# the adjective of a '-cyte'/'-blast' name with 'cell(s)': 'monocytic cell' is a monocyte,
# 'lymphoblastic cells' lymphoblasts
_ADJECTIVE_CELL = re.compile(r"\b([a-z]+(?:cyt|blast))ic cell(s?)\b")


def _cell_nouns(text: str) -> str:
    """Normalised text with glued and adjectival cell names written as the ontology does."""
    return _ADJECTIVE_CELL.sub(lambda m: f"{m.group(1)}{'e' if m.group(1).endswith('cyt') else ''}{m.group(2)}",
                               _GLUED_CELL.sub(r"\1 cell\2", _GLUED_DERIVED.sub(r"\1 \2", text)))
# words and signs that list several things in one value ('HeLa and HEK293', 'MCF7 + T47D co-culture')
_LIST_CUE = re.compile(r"[+&;,]|\b(and|with|plus|vs|versus|co-?cultur\w*|mix\w*)\b", re.I)
_CVCL_CONTEXT = re.compile(r"cell ?lines?|cells?\b")


def _in_capitals(text: str, word: str) -> bool:
    """``word`` occurs in ``text`` written with at least two capitals ('RPE', 'hESC', 'CLi')."""
    return any(sum(c.isupper() for c in m.group(0)) >= 2
               for m in re.finditer(rf"(?<![A-Za-z0-9]){re.escape(word)}s?(?![A-Za-z0-9])", text, re.I))


_ZYGOSITY = re.compile(r"[+-]\s*/\s*[+-]")  # knock-out/knock-in zygosity: -/-, +/-, +/+


def _zygosity(text: str) -> tuple[str, ...]:
    return tuple(re.sub(r"\s", "", z) for z in _ZYGOSITY.findall(text))


def _mixed_case(text: str, phrase: str) -> bool:
    """``phrase`` occurs in ``text`` written like a line's name, upper and lower case mixed
    with at least two capitals ('HeLa', 'HaCaT', 'MiaPaCa'), not as an ordinary word."""
    pat = r"(?<![A-Za-z0-9])" + r"[^A-Za-z0-9]*".join(map(re.escape, phrase.split())) + r"(?![A-Za-z0-9])"
    for m in re.finditer(pat, text, re.I):
        w = m.group(0)
        if sum(c.isupper() for c in w) >= 2 and any(c.islower() for c in w):
            return True
    return False


@dataclass(slots=True)
class Hit:
    id: str
    matched: str  # the text that matched
    kind: str  # 'lexicon' | 'label' | 'synonym' | 'abbrev' | 'typo' | 'ambiguous' | 'variant'
    count: int = 1


class Matcher:
    def __init__(self, index: TermIndex, resources: str | None = None) -> None:
        self.index = index
        self.lex = lexicon(resources)
        # derived tables are shared by every Matcher of the same index (built once per process)
        shared = index.__dict__.setdefault("_matcher_tables", {})
        self._scan_tables: dict[str, dict[str, list[tuple[str, str]]]] = shared.setdefault(("scan", resources), {})
        self._shared = shared

    # ---------------------------------------------------------------- whole values
    def lookup(self, field: str, value: str) -> list[Hit]:
        """Exact matches for a whole value (lexicon first). Empty when nothing matches exactly."""
        key = norm(value)
        if not key:
            return []
        hits = self._lookup_exact(field, value, key)
        if hits:
            return hits
        stripped = " ".join(w for w in key.split() if w not in _WRAP_WORDS)
        if stripped and stripped != key:
            hits = self._lookup_exact(field, stripped, stripped)
            if hits:
                return hits
        # misspelt words ('Firoblast', 'adipocites'): each unknown word of 5+ letters replaced by
        # the closest word of the field's vocabulary, then looked up again (kind 'typo')
        fixed = self.correct(field, stripped or key)
        if fixed:
            return [Hit(h.id, value, "typo") for h in self._lookup_exact(field, fixed, fixed)]
        return []

    def correct(self, field: str, key: str) -> str | None:
        """``key`` (normalised) with misspelt words corrected, or None when none was."""
        vocab, buckets = self._vocabulary(field)
        words, changed = key.split(), False
        for i, w in enumerate(words):
            if len(w) < 5 or w in vocab or w.isdigit():
                continue
            pool = [v for n in range(len(w) - 2, len(w) + 3) for v in buckets.get((w[:2], n), ())]
            best = difflib.get_close_matches(w, pool, n=1, cutoff=0.85) or \
                difflib.get_close_matches(singular(w), pool, n=1, cutoff=0.85)
            if best:
                words[i], changed = best[0], True
        return " ".join(words) if changed else None

    def cell_or_tissue_word(self, name: str) -> bool:
        """A one-word name of letters that is a word of the cell-type or tissue vocabulary
        ('Beta', 'Alpha'): a line named so is not taken from free text or another key's value."""
        word = norm(name)
        if not word.isalpha():
            return False
        if "cell_tissue_words" not in self._shared:
            self._shared["cell_tissue_words"] = (self._vocabulary("cell_type")[0]
                                                 | self._vocabulary("tissue")[0])
        return word in self._shared["cell_tissue_words"]

    def _vocabulary(self, field: str) -> tuple[set[str], dict[tuple[str, int], list[str]]]:
        """Words of the field's labels, synonyms and lexicon, bucketed by first letters and length."""
        key = ("vocab", field)
        if key not in self._shared:
            vocab = {w for phrase in self._scan_table(field) for w in phrase.split()}
            vocab |= {w for phrase in self.lex.get(field, {}) for w in phrase.split()}
            buckets: dict[tuple[str, int], list[str]] = {}
            for w in vocab:
                if len(w) >= 5 and w.isalpha():
                    buckets.setdefault((w[:2], len(w)), []).append(w)
            self._shared[key] = (vocab, buckets)
        return self._shared[key]

    def _lookup_exact(self, field: str, value: str, key: str) -> list[Hit]:
        lex = self.lex.get(field, {})
        for k in (key, singular(key)):
            if k in lex:
                tid = self.index.resolve(lex[k][0])
                if tid:
                    return [Hit(tid, value, "lexicon")]
        if field == "cell_line":
            ck = compact(value)
            for k, (tid, _) in lex.items():
                if compact(k) == ck:
                    return [Hit(tid, value, "lexicon")]
        out = []
        for tid, kind in self.index.find(value, FIELD_ONTOLOGIES.get(field, ())):
            tid = self.index.resolve(tid)
            if tid and self.allowed(field, tid) and all(h.id != tid for h in out):
                out.append(Hit(tid, value, kind))
        if field == "cell_line" and len(out) > 1 and _ZYGOSITY.search(value):
            # 'HCT116 TP53-/-' is 'HCT 116 TP53(-/-)', not '(+/-)': names equal but for the signs
            same = [h for h in out if _zygosity(self.index.label(h.id) or "") == _zygosity(value)]
            if len(same) == 1:
                return same
        return out

    def allowed(self, field: str, tid: str) -> bool:
        """Whether term ``tid`` may answer ``field`` (not organism-level or non-human anatomy for tissue)."""
        if field == "tissue" and (organism_level(self.index, tid) or tid.startswith(_NON_HUMAN_UBERON)):
            return False
        return not any(self.index.is_a(tid, a) for a in _EXCLUDE_UNDER.get(field, ()))

    # ---------------------------------------------------------------- free text
    def _scan_table(self, field: str) -> dict[str, list[tuple[str, str]]]:
        """normalised phrase -> [(id, kind)] for scanning; generic/organism-level terms removed."""
        if field in self._scan_tables:
            return self._scan_tables[field]
        table: dict[str, list[tuple[str, str]]] = {}
        elided: dict[str, list[tuple[str, str]]] = {}
        for onto in FIELD_ONTOLOGIES.get(field, ()):
            if onto in ("CVCL", "EFO", "PATO"):
                continue  # CVCL: handled by _scan_cell_lines; EFO/PATO: only whole values
            for phrase, hits in self.index.lookup.get(onto, {}).items():
                if len(phrase) < 3 or phrase in _GENERIC:
                    continue
                # short one-word synonyms are abbreviations ('RPE', 'ESC', 'CLi'): inside free text
                # they count only where written in capitals (scan), or 'cli' in any text would be a nucleus
                abbrev = len(phrase) <= 4 and " " not in phrase
                keep = [(i, "abbrev" if abbrev and k == "synonym" else k) for i, k in hits if self.allowed(field, i)]
                if keep:
                    table.setdefault(phrase, []).extend(keep)
                    # 'subcutaneous adipose' names 'subcutaneous adipose tissue': the head noun is
                    # often left out (two words must remain, so 'adipose'/'connective' alone do not)
                    words = phrase.split()
                    if field == "tissue" and len(words) >= 3 and words[-1] == "tissue":
                        elided.setdefault(" ".join(words[:-1]), []).extend(keep)
        for phrase, hits in elided.items():
            table.setdefault(phrase, hits)
        for phrase, (tid, scope) in self.lex.get(field, {}).items():
            if scope == "any" and field != "cell_line":
                table[phrase] = [(tid, "lexicon")]
        self._scan_tables[field] = table
        return table

    def scan(self, field: str, text: str, dedicated: bool = False) -> list[Hit]:
        """Terms of ``field`` named inside free text, longest match first, counted; best first.

        ``dedicated``: the text is the value of the field's own key ('cell line: KG1 cells'), so
        short and ambiguous cell line names are accepted there (not in arbitrary free text).
        """
        if field == "cell_line":
            return self._scan_cell_lines(text, dedicated)
        table = self._scan_table(field)
        tokens = _cell_nouns(norm(text)).split()
        counts: Counter[str] = Counter()
        first: dict[str, Hit] = {}
        i = 0
        while i < len(tokens):
            for n in range(min(MAX_NGRAM, len(tokens) - i), 0, -1):
                phrase = " ".join(tokens[i:i + n])
                hits = table.get(phrase) or (table.get(singular(phrase)) if n >= 1 else None)
                if hits and all(h[1] == "abbrev" for h in hits) and not _in_capitals(text, phrase):
                    hits = None
                if hits:
                    hits = sorted(hits, key=lambda h: {"lexicon": 0, "label": 1}.get(h[1], 2))
                    tid = self.index.resolve(hits[0][0])
                    if tid:
                        counts[tid] += 1
                        first.setdefault(tid, Hit(tid, phrase, hits[0][1]))
                    i += n - 1
                    break
            i += 1
        out = []
        for tid, c in counts.items():
            h = first[tid]
            h.count = c
            out.append(h)
        # a general mention refines to a specific one found too ('leukocyte' ... 'T cell'):
        # the ancestor's mentions count for the descendant and the ancestor is dropped
        if len(out) > 1:
            keep = []
            for h in out:
                below = [o for o in out if o is not h and self.index.is_a(o.id, h.id)]
                if below:
                    for o in below:
                        o.count += h.count
                else:
                    keep.append(h)
            out = keep
        # more mentions first, then longer (more specific) phrases, then deeper terms
        out.sort(key=lambda h: (-h.count, -len(h.matched), -self.index.depth(h.id)))
        return out

    def compose(self, cell_id: str, tissue_id: str) -> str | None:
        """The CL term for 'cell of tissue' when the ontology has one ('fibroblast' + 'lung' ->
        'fibroblast of lung', 'skin fibroblast'): the specific answer a text implies by naming both."""
        c, t = self.index.get(cell_id), self.index.get(tissue_id)
        if not c or not t:
            return None
        cell_names = [c.label] + [x for x in c.all_synonyms() if len(x) > 3][:8]
        tissue_names = [t.label] + [x for x in t.all_synonyms() if len(x) > 3][:8]
        tissue_names += [p for p, (tid, _) in self.lex.get("tissue", {}).items() if tid == tissue_id]
        for cn in cell_names:
            for tn in tissue_names:
                for phrase in (f"{cn} of {tn}", f"{tn} {cn}"):
                    for tid, _ in self.index.find(phrase, ("CL",)):
                        tid = self.index.resolve(tid)
                        if tid and tid != cell_id and self.index.is_a(tid, cell_id):
                            return tid
        return None

    @property
    def common_words(self) -> set[str]:
        """Names that are also ordinary ontology words: not taken as cell line names inside text."""
        return self.index.common_compact

    def _scan_cell_lines(self, text: str, dedicated: bool = False) -> list[Hit]:
        lex = self.lex.get("cell_line", {})
        lex_compact = {compact(k): v[0] for k, v in lex.items() if v[1] == "any"}
        tokens = norm(text).split()
        context = bool(_CVCL_CONTEXT.search(text.lower()))
        out: dict[str, Hit] = {}
        for i in range(len(tokens)):
            for n in (3, 2, 1):
                if i + n > len(tokens):
                    continue
                phrase = " ".join(tokens[i:i + n])
                ck = compact(phrase)
                if ck in lex_compact:
                    tid = lex_compact[ck]
                    out.setdefault(tid, Hit(tid, phrase, "lexicon"))
                    break
                if dedicated:
                    if len(ck) < 3 or ck in self.common_words:
                        continue
                elif len(ck) < 4 or ck in self.common_words or ck.isdigit() or not context \
                        and not any(c.isdigit() for c in ck) and not (ck in self.index.compact_lookup
                                                                     and _mixed_case(text, phrase)):
                    # free text: a line's name needs 'cell(s)/cell line' near, a digit or 'HeLa'-style
                    # capitals, and a letter ('2013' is a year, not line '201.3')
                    continue
                ids = self.index.compact_lookup.get(ck, [])
                if ids and not dedicated and self.cell_or_tissue_word(ck):
                    continue
                if len(ids) == 1:
                    out.setdefault(ids[0], Hit(ids[0], phrase, "label"))
                    break
                if ids:
                    # several Cellosaurus entries share the name: the lowest accession is the
                    # established line; marked ambiguous (lower confidence, review/LLM)
                    out.setdefault(min(ids), Hit(min(ids), phrase, "ambiguous"))
                    break
        if not out and dedicated:
            out.update({h.id: h for h in self._line_variant(tokens)})
        return sorted(out.values(), key=lambda h: (h.kind != "lexicon", -len(h.matched)))

    def _line_variant(self, tokens: list[str]) -> list[Hit]:
        """A line written with a glued clone/subline/variant or knock-out suffix ('HCT116shP53',
        'MCF7luc', 'A549Cas9'): the longest Cellosaurus name that the value starts with, where
        the rest is a suffix (kind 'variant': lower confidence, reported with its basis)."""
        if not tokens:
            return []
        ck = compact(tokens[0])
        for n in range(len(ck) - 1, 3, -1):
            head, rest = ck[:n], ck[n:]
            if ck[n - 1].isdigit() == ck[n].isdigit():
                continue  # the suffix starts where letters and digits meet ('HCT116|shP53', 'MCF7|luc')
            if head in self.common_words or not any(c.isdigit() for c in head) and len(head) < 5:
                continue
            ids = self.index.compact_lookup.get(head, [])
            if len(ids) == 1 and rest:
                return [Hit(ids[0], tokens[0], "variant")]
        return []

    def lines_named(self, value: str) -> list[Hit]:
        """Distinct lines a dedicated value names ('HeLa and HEK293', 'MCF7 + T47D co-culture')."""
        if not _LIST_CUE.search(value):
            return []  # 'HEK 293 T-REx', 'BJ (ATCC CRL-2522)': one line written with more names
        hits = [h for h in self._scan_cell_lines(value, dedicated=True) if h.kind in ("label", "lexicon")
                and (len(compact(h.matched)) >= 4 or h.kind == "lexicon")]
        # names nested in another's ('HEK293' inside 'HEK293T') are the same mention
        hits = [h for h in hits if not any(o is not h and compact(h.matched) in compact(o.matched) for o in hits)]
        text = norm(value)
        return sorted(hits, key=lambda h: text.find(h.matched))  # in the order the value names them
