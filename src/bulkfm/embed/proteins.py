"""Protein FASTA -> one canonical (longest) protein per gene.

Header formats understood (the gene is what matters; the protein id is kept for provenance):

* GENCODE translations: ``>ENSP...|ENST...|ENSG...|OTTHUMG...|OTTHUMT...|TX-201|SYMBOL|len|``
* Ensembl pep: ``>ENSP... pep chromosome:... gene:ENSG... transcript:... gene_symbol:SYMBOL ...``
* UniProt: ``>sp|P04637|P53_HUMAN Cellular tumor antigen p53 OS=Homo sapiens OX=9606 GN=TP53 ...``
* bulkfm's bundled subset: ``>SYMBOL uniprot=ACC entrez=ID ensembl=ENSG...[;ENSG...]``

"Canonical" is the longest protein of the gene (ties: first in the file). That is the usual
proxy when no canonical-isoform annotation is at hand (BulkFormer does the same); with
Ensembl/GENCODE input, pre-filtering to MANE/Ensembl-canonical transcripts is better still.
"""

from __future__ import annotations

import gzip
import io
import logging
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bulkfm.embed.gene_ids import match_genes, normalize_gene_id

log = logging.getLogger(__name__)

# ESM's alphabet: the 20 standard residues plus X, B, U, Z, O; anything else becomes X.
_VALID = set("ACDEFGHIKLMNPQRSTVWYXBUZO")
_NOT_VALID = re.compile(f"[^{''.join(sorted(_VALID))}]")
_ENSG = re.compile(r"^ENS[A-Z]*G\d+(\.\d+)?(_PAR_Y)?$")


@dataclass(frozen=True)
class Protein:
    protein_id: str
    sequence: str
    symbol: str | None = None
    gene_ids: tuple[str, ...] = ()  # Ensembl gene ids (versioned as given)

    @property
    def gene_key(self) -> str | None:
        """What groups isoforms of one gene: its first Ensembl id, else its symbol."""
        for g in self.gene_ids:
            key = normalize_gene_id(g)
            if key:
                return key
        return normalize_gene_id(self.symbol) if self.symbol else None


def parse_header(header: str) -> tuple[str, str | None, tuple[str, ...]]:
    """``(protein_id, symbol, ensembl_gene_ids)`` from a FASTA header line (without ``>``)."""
    header = header.strip()
    first, _, rest = header.partition(" ")
    fields = first.split("|")
    # GENCODE translations: ENSP|ENST|ENSG|havana gene|havana tx|tx name|gene name|length|
    if len(fields) >= 7 and fields[0].startswith("ENSP") and _ENSG.match(fields[2]):
        symbol = fields[6] or None
        return fields[0], symbol, (fields[2],)
    # UniProt: db|ACC|ENTRY_NAME description ... GN=SYMBOL
    if len(fields) >= 3 and fields[0] in ("sp", "tr"):
        gn = re.search(r"\bGN=(\S+)", rest)
        return fields[1], gn.group(1) if gn else None, ()
    keys = dict(re.findall(r"(\w+)[:=](\S+)", rest))
    # Ensembl pep: gene:ENSG... gene_symbol:SYMBOL
    if "gene" in keys and _ENSG.match(keys["gene"]):
        return first, keys.get("gene_symbol"), (keys["gene"],)
    # bulkfm subset: SYMBOL uniprot=.. entrez=.. ensembl=ENSG..[;ENSG..]
    if "uniprot" in keys or "ensembl" in keys or "entrez" in keys:
        ens = tuple(e for e in keys.get("ensembl", "").split(";") if _ENSG.match(e))
        return keys.get("uniprot", first), first, ens
    return first, None, ()


def read_fasta(path: str | os.PathLike[str]) -> Iterator[Protein]:
    """Proteins of a (gzipped or plain) FASTA; '*' stops are dropped, odd letters become X."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: protein FASTA not found (config embed.proteins)")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as handle:
        yield from _records(handle, str(path))


def _records(handle: io.TextIOBase, where: str) -> Iterator[Protein]:
    header: str | None = None
    chunks: list[str] = []

    def emit() -> Protein | None:
        if header is None:
            return None
        seq = "".join(chunks).upper().rstrip("*").replace("*", "X")
        seq = _NOT_VALID.sub("X", seq)
        if not seq:
            log.warning("%s: empty sequence for %s", where, header[:60])
            return None
        pid, symbol, ens = parse_header(header)
        return Protein(protein_id=pid, sequence=seq, symbol=symbol, gene_ids=ens)

    for n, line in enumerate(handle, 1):
        line = line.strip()
        if not line:
            continue
        if line.startswith(">"):
            if (p := emit()) is not None:
                yield p
            header, chunks = line[1:], []
        elif header is None:
            raise ValueError(f"{where}:{n}: sequence before the first '>' header; not a FASTA")
        else:
            chunks.append(re.sub(r"\s+", "", line))
    if (p := emit()) is not None:
        yield p


@dataclass
class GeneProteins:
    """The canonical protein of each gene in a FASTA, with the names the gene goes by."""

    proteins: list[Protein] = field(default_factory=list)  # one per gene
    n_records: int = 0
    n_without_gene: int = 0

    def aliases(self) -> list[list[str]]:
        return [[p.symbol or "", *p.gene_ids] for p in self.proteins]

    def keys(self) -> list[str]:
        return [p.gene_key or p.protein_id for p in self.proteins]


def canonical_proteins(records: Iterator[Protein] | Sequence[Protein]) -> GeneProteins:
    """Longest protein per gene (ties: the first seen)."""
    best: dict[str, Protein] = {}
    out = GeneProteins()
    for p in records:
        out.n_records += 1
        key = p.gene_key
        if key is None:
            out.n_without_gene += 1
            continue
        if key not in best or len(p.sequence) > len(best[key].sequence):
            best[key] = p
    out.proteins = list(best.values())
    if out.n_without_gene:
        log.warning("%d of %d FASTA records name no gene (header format not recognised?); "
                    "skipped", out.n_without_gene, out.n_records)
    return out


def proteins_for_genes(genes: Sequence[str], gene_proteins: GeneProteins,
                       gene_names: Sequence[str] | None = None) -> list[Protein | None]:
    """The canonical protein of each requested gene (exact id, else symbol / Ensembl id)."""
    query_aliases = None if gene_names is None else [[n] for n in gene_names]
    match = match_genes(genes, gene_proteins.keys(), reference_aliases=gene_proteins.aliases(),
                        query_aliases=query_aliases)
    log.info("proteins for %d of %d genes (%d ambiguous names skipped)",
             len(genes) - match.n_missing, len(genes), match.n_ambiguous)
    return [gene_proteins.proteins[i] if i >= 0 else None for i in match.index]
