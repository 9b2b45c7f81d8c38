"""One ontology term index for every field: ID, label, synonyms by type, parents, ancestors,
obsolete -> replaced_by, plus normalised-string lookup tables.

Built offline from the JSON snapshots that ``cellxgene-ontology-guide`` ships, or from OBO/OWL
files named in the config (read with ``pronto``), then pickled under the user cache directory
(``$BULKFM_CACHE`` or ``~/.cache/bulkfm``) keyed by the sources, so later runs load it in about a
second instead of parsing 450k terms again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bulkfm.common.atomic import atomic_path

log = logging.getLogger(__name__)

INDEX_VERSION = 9
# What the harmonizer needs. NCBITaxon (3 GB to load) and the fly/worm/fish ontologies are left out.
DEFAULT_ONTOLOGIES: tuple[str, ...] = ("UBERON", "CL", "MONDO", "EFO", "PATO", "HsapDv", "CVCL", "CHEBI")
# Ontologies whose ancestor sets are kept (CVCL/CHEBI are flat or not scored by depth; keeping
# their ancestor dicts would double the index size).
WITH_ANCESTORS = {"UBERON", "CL", "MONDO", "EFO", "PATO", "HsapDv"}
# Flat ontologies (no synonyms or hierarchy in the snapshots, 390k of the 465k terms) are kept as
# plain id -> label dicts: the cached index then loads about three times faster.
FLAT = {"CVCL", "CHEBI"}

_NON_ALNUM = re.compile(r"[^0-9a-z]+")


def cache_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """The user cache directory for bulkfm (index, embeddings, LLM answers)."""
    if override:
        return Path(override).expanduser()
    env = os.environ.get("BULKFM_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "bulkfm"


def norm(text: str) -> str:
    """Lower case, every run of non-alphanumerics to one space: 'T-Cell,  CD4+' -> 't cell cd4'."""
    return _NON_ALNUM.sub(" ", text.lower()).strip()


def compact(text: str) -> str:
    """Alphanumerics only: 'HEK-293 T' -> 'hek293t' (cell line names vary only in punctuation)."""
    return _NON_ALNUM.sub("", text.lower())


def singular(normed: str) -> str:
    """Cheap singular of the last word ('t cells' -> 't cell', 'arteries' -> 'artery')."""
    if len(normed) < 4 or not normed[-1] == "s":
        return normed
    if normed.endswith("ies"):
        return normed[:-3] + "y"
    if normed.endswith(("ss", "us", "is")):
        return normed
    return normed[:-1]


def prefix_of(term_id: str) -> str:
    """'UBERON:0002048' -> 'UBERON', 'CVCL_0062' -> 'CVCL'."""
    if term_id.startswith("CVCL_"):
        return "CVCL"
    return term_id.split(":", 1)[0]


@dataclass(slots=True)
class Term:
    id: str
    label: str
    ontology: str
    synonyms: dict[str, tuple[str, ...]] = field(default_factory=dict)  # type -> names
    parents: tuple[str, ...] = ()
    ancestors: dict[str, int] = field(default_factory=dict)  # id -> distance (>= 1)
    obsolete: bool = False
    replaced_by: str | None = None

    def all_synonyms(self) -> list[str]:
        return [s for names in self.synonyms.values() for s in names]


@dataclass
class TermIndex:
    """All terms plus lookup tables: ``lookup[ontology][normalised string] -> [(id, kind)]``."""

    terms: dict[str, Term]
    versions: dict[str, str]
    flat: dict[str, str] = field(default_factory=dict)  # id -> label of live CVCL/CHEBI terms
    flat_replaced: dict[str, str | None] = field(default_factory=dict)  # obsolete flat id -> replacement
    lookup: dict[str, dict[str, list[tuple[str, str]]]] = field(default_factory=dict)
    compact_lookup: dict[str, list[str]] = field(default_factory=dict)  # CVCL only
    # compact forms of every non-CVCL label/synonym: a 'cell line name' that is also an ordinary
    # ontology word ('Control', 'Liver') is not trusted inside free text
    common_compact: set[str] = field(default_factory=set)

    # ---------------------------------------------------------------- queries
    def get(self, term_id: str) -> Term | None:
        t = self.terms.get(term_id)
        if t is None and term_id in self.flat:
            t = Term(id=term_id, label=self.flat[term_id], ontology=prefix_of(term_id))
        return t

    def __len__(self) -> int:
        return len(self.terms) + len(self.flat) + len(self.flat_replaced)

    def resolve(self, term_id: str) -> str | None:
        """Follow obsolete -> replaced_by; None when unknown or obsolete without replacement."""
        if term_id in self.flat:
            return term_id
        if term_id in self.flat_replaced:
            repl = self.flat_replaced[term_id]
            return repl if repl in self.flat else None
        seen = set()
        while term_id in self.terms and term_id not in seen:
            seen.add(term_id)
            t = self.terms[term_id]
            if not t.obsolete:
                return term_id
            if not t.replaced_by:
                return None
            term_id = t.replaced_by
        return None

    def label(self, term_id: str | None) -> str | None:
        if not term_id:
            return None
        t = self.terms.get(term_id)
        return t.label if t else self.flat.get(term_id)

    def is_a(self, term_id: str, ancestor_id: str) -> bool:
        """True when term_id is ancestor_id or below it."""
        if term_id == ancestor_id:
            return True
        t = self.terms.get(term_id)
        return bool(t and ancestor_id in t.ancestors)

    def distance(self, term_id: str, ancestor_id: str) -> int | None:
        if term_id == ancestor_id:
            return 0
        t = self.terms.get(term_id)
        return t.ancestors.get(ancestor_id) if t else None

    def depth(self, term_id: str) -> int:
        t = self.terms.get(term_id)
        return max(t.ancestors.values(), default=0) if t else 0

    def find(self, text: str, ontologies: Iterable[str]) -> list[tuple[str, str]]:
        """Exact label/synonym matches of ``text`` (normalised; singular tried too)."""
        key = norm(text)
        if not key:
            return []
        out: list[tuple[str, str]] = []
        for onto in ontologies:
            if onto == "CVCL":
                out += [(i, "label") for i in self.compact_lookup.get(compact(text), [])]
                continue
            table = self.lookup.get(onto, {})
            hits = table.get(key) or table.get(singular(key)) or []
            out += hits
        # labels first, then synonyms; stable within a kind
        return sorted(out, key=lambda h: h[1] != "label")

    def strings(self, ontology: str, synonyms: bool = True) -> list[tuple[str, str]]:
        """(string, id) for every live label (and synonym) of one ontology (embedding corpus)."""
        out = []
        for t in self.terms.values():
            if t.ontology != ontology or t.obsolete or not t.label:
                continue
            out.append((t.label, t.id))
            if synonyms:
                out += [(s, t.id) for s in dict.fromkeys(t.all_synonyms()) if s.lower() != t.label.lower()]
        return out


# -------------------------------------------------------------------- building
def _snapshot_terms(ontology: str) -> tuple[dict[str, Term], str]:
    from cellxgene_ontology_guide.supported_versions import CXGSchema

    schema = CXGSchema()
    raw = schema.ontology(ontology)
    version = schema.supported_ontologies[ontology]["version"]
    keep_anc = ontology in WITH_ANCESTORS
    terms: dict[str, Term] = {}
    for tid, v in raw.items():
        label = v.get("label") or ""
        anc = v.get("ancestors") or {}
        repl = v.get("replaced_by") or None
        if repl and repl.startswith("obo."):  # 'obo.HsapDv_0000226' style
            repl = repl[4:].replace("_", ":", 1)
        syns = tuple(v.get("synonyms") or ())
        terms[tid] = Term(
            id=tid,
            label=label,
            ontology=ontology,
            # the snapshots do not keep synonym scopes; OBO input does (exact/broad/narrow/related)
            synonyms={"synonym": syns} if syns else {},
            parents=tuple(k for k, d in anc.items() if d == 1),
            ancestors=dict(anc) if keep_anc else {},
            obsolete=bool(v.get("deprecated")),
            replaced_by=repl,
        )
    return terms, f"cxg:{version}"


def _obo_terms(ontology: str, path: Path) -> tuple[dict[str, Term], str]:
    import pronto

    try:
        onto = pronto.Ontology(str(path))
    except BaseException as exc:  # pronto's Rust parser raises PanicException (a BaseException)
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        raise ValueError(f"cannot read ontology file {path} for {ontology}: {exc}") from None
    terms: dict[str, Term] = {}
    for t in onto.terms():
        tid = t.id
        if prefix_of(tid) != ontology:
            continue  # imported terms from other ontologies
        syns: dict[str, list[str]] = {}
        for s in t.synonyms:
            syns.setdefault(str(s.scope).lower(), []).append(s.description)
        parents = tuple(p.id for p in t.superclasses(distance=1, with_self=False))
        repl = next((r.id for r in t.replaced_by), None) if t.obsolete else None
        terms[tid] = Term(
            id=tid,
            label=t.name or "",
            ontology=ontology,
            synonyms={k: tuple(v) for k, v in syns.items()},
            parents=parents,
            obsolete=bool(t.obsolete),
            replaced_by=repl,
        )
    # ancestors with distances by BFS over parents
    for term in terms.values():
        dist: dict[str, int] = {}
        frontier, d = list(term.parents), 1
        while frontier:
            nxt = []
            for p in frontier:
                if p not in dist and p != term.id:
                    dist[p] = d
                    nxt += list(terms[p].parents) if p in terms else []
            frontier, d = nxt, d + 1
        term.ancestors = dist
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return terms, f"file:{path.name}:{digest}"


_IMMORTALISED = re.compile(r"^hTERT[\s-]+", re.I)
_HUMAN_QUALIFIER = re.compile(r"^(.*\S)\s+\[Human [^\]]*\]$")


def _build_lookup(index: TermIndex) -> None:
    for tid, label in index.flat.items():
        onto = prefix_of(tid)
        if onto == "CVCL":
            index.compact_lookup.setdefault(compact(label), []).append(tid)
            human = _HUMAN_QUALIFIER.match(label)
            if human:
                # Cellosaurus tells lines of one name apart by a bracket ('HK-2 [Human kidney]');
                # users write the name alone. Non-human namesakes ('[Mouse ...]') are not indexed.
                index.compact_lookup.setdefault(compact(human.group(1)), []).append(tid)
            if label.startswith("NCI-H") and label[5:6].isdigit():
                # the NCI lung lines are written without the prefix ('H441' for NCI-H441); the
                # offline Cellosaurus snapshot has no synonyms to say so
                index.compact_lookup.setdefault(compact(label[4:]), []).append(tid)
        else:
            key = norm(label)
            if key:
                index.lookup.setdefault(onto, {}).setdefault(key, []).append((tid, "label"))
                index.common_compact.add(key.replace(" ", ""))
    for tid, label in index.flat.items():
        rest = _IMMORTALISED.sub("", label) if prefix_of(tid) == "CVCL" else label
        if rest != label and len(compact(rest)) >= 3 and compact(rest) not in index.compact_lookup:
            # an hTERT-immortalised line written without the prefix ('RPE1 TP53-/-' for
            # hTERT-RPE1), unless a line of its own has that name
            index.compact_lookup[compact(rest)] = [tid]
    cell_line_classes = {t.id for t in index.terms.values()
                         if t.ontology == "EFO" and t.label and t.label.endswith("cell line")}
    for t in index.terms.values():
        if t.obsolete or not t.label:
            continue
        if t.ontology == "CVCL":
            index.compact_lookup.setdefault(compact(t.label), []).append(t.id)
            continue
        # EFO's own cell line terms ('K562', 'Caki2') are names, not ordinary words
        is_cell_line = t.ontology == "EFO" and (t.id in cell_line_classes or not cell_line_classes.isdisjoint(t.ancestors))
        table = index.lookup.setdefault(t.ontology, {})
        names = [(t.label, "label")]
        for kind, syns in t.synonyms.items():
            # broad/narrow synonyms are not the same thing; keep exact + untyped + related
            if kind in ("broad", "narrow"):
                continue
            names += [(s, "synonym") for s in syns]
        for name, kind in names:
            key = norm(name)
            if not key:
                continue
            if not is_cell_line:
                index.common_compact.add(key.replace(" ", ""))
            hits = table.setdefault(key, [])
            if all(h[0] != t.id for h in hits):
                hits.append((t.id, kind))


def source_key(ontologies: Iterable[str], obo_files: Mapping[str, str] | None) -> str:
    """What the cache is keyed on: index version, package version, ontologies, OBO files."""
    import cellxgene_ontology_guide

    obo = {k: (str(Path(v).resolve()), Path(v).stat().st_mtime_ns) for k, v in (obo_files or {}).items()}
    blob = json.dumps(
        [INDEX_VERSION, getattr(cellxgene_ontology_guide, "__version__", "?"), sorted(ontologies), obo],
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def build_index(
    ontologies: Iterable[str] = DEFAULT_ONTOLOGIES, obo_files: Mapping[str, str] | None = None
) -> TermIndex:
    terms: dict[str, Term] = {}
    versions: dict[str, str] = {}
    obo_files = dict(obo_files or {})
    for onto in dict.fromkeys(list(ontologies) + list(obo_files)):
        t0 = time.perf_counter()
        if onto in obo_files:
            part, ver = _obo_terms(onto, Path(obo_files[onto]))
        else:
            part, ver = _snapshot_terms(onto)
        terms.update(part)
        versions[onto] = ver
        log.info("ontology %s (%s): %d terms in %.1fs", onto, ver, len(part), time.perf_counter() - t0)
    index = TermIndex(terms={}, versions=versions)
    for tid, t in terms.items():
        if t.ontology in FLAT and not t.synonyms:
            if t.obsolete:
                index.flat_replaced[tid] = t.replaced_by
            elif t.label:
                index.flat[tid] = t.label
        else:
            index.terms[tid] = t
    _build_lookup(index)
    return index


_LOADED: dict[Path, TermIndex] = {}


def load_index(
    ontologies: Iterable[str] = DEFAULT_ONTOLOGIES,
    obo_files: Mapping[str, str] | None = None,
    cache: str | os.PathLike[str] | None = None,
) -> TermIndex:
    """Load the cached index, building and caching it first when absent."""
    ontologies = tuple(ontologies)
    for onto, path in (obo_files or {}).items():
        if not Path(path).is_file():
            raise FileNotFoundError(f"ontology file for {onto} not found: {path} (fix metadata.ontology.obo_files)")
    key = source_key(ontologies, obo_files)
    path = cache_dir(cache) / "ontology" / f"index-{key}.pkl"
    if path in _LOADED:  # one process (a test session, a notebook) loads it once
        return _LOADED[path]
    if path.is_file():
        t0 = time.perf_counter()
        with open(path, "rb") as fh:
            index = pickle.load(fh)  # our own cache file, written below
        log.info("ontology index loaded from %s in %.1fs (%d terms)", path, time.perf_counter() - t0, len(index))
        _LOADED[path] = index
        return index
    t0 = time.perf_counter()
    log.info("building ontology index (first run; cached afterwards at %s)", path)
    index = build_index(ontologies, obo_files)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            pickle.dump(index, fh, protocol=pickle.HIGHEST_PROTOCOL)
    log.info("ontology index built in %.1fs: %d terms", time.perf_counter() - t0, len(index))
    _LOADED[path] = index
    return index
