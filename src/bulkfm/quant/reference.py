"""The reference a run is quantified against: transcript → gene map and the fixed gene order.

The gene order is written once per reference (``genes.parquet``) and every per-sample gene
vector follows it, so the matrix step only stacks vectors and never re-aligns gene names.
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pandas as pd

_ENSEMBL_GENE = re.compile(r"\bgene:(\S+)")
_ENSEMBL_SYMBOL = re.compile(r"\bgene_symbol:(\S+)")
_ENSEMBL_BIOTYPE = re.compile(r"\bgene_biotype:(\S+)")

TX_COLUMNS = ("transcript_id", "TXNAME", "tx_id", "transcript")
GENE_COLUMNS = ("gene_id", "GENEID", "gene")
NAME_COLUMNS = ("gene_name", "gene_symbol", "symbol", "GENENAME")
TYPE_COLUMNS = ("gene_type", "gene_biotype", "biotype")


def strip_version(ids: pd.Series) -> pd.Series:
    """``ENSG00000141510.18`` → ``ENSG00000141510`` (Ensembl/GENCODE and RefSeq ids only).

    Gene symbols may end in ``.1`` too, so other identifiers are left unchanged.
    """
    return ids.str.replace(r"^(ENS[A-Z]*\d{6,}|[NX][MR]_\d+)\.\d+$", r"\1", regex=True)


def _open_text(path: Path):
    return gzip.open(path, "rt") if str(path).endswith(".gz") else open(path)


def tx2gene_from_fasta(fasta: str | Path) -> pd.DataFrame:
    """Derive tx2gene from transcript FASTA headers (Ensembl cDNA or GENCODE ``|``-separated).

    Sequences without gene information (spike-ins, phiX) map to themselves with type
    ``spike_in`` so that they are counted, visible, and dropped by the protein-coding filter.
    """
    rows = []
    with _open_text(Path(fasta)) as fh:
        for line in fh:
            if not line.startswith(">"):
                continue
            header = line[1:].rstrip("\n")
            if "|" in header.split()[0]:  # GENCODE: ENST|ENSG|OTTHUMG|OTTHUMT|TXNAME|GENE|len|biotype|
                parts = header.split()[0].split("|")
                tx, gene = parts[0], parts[1]
                name = parts[5] if len(parts) > 5 else gene
                gtype = parts[7] if len(parts) > 7 else ""
            else:
                tx = header.split()[0]
                gm, sm, bm = (_ENSEMBL_GENE.search(header), _ENSEMBL_SYMBOL.search(header),
                              _ENSEMBL_BIOTYPE.search(header))
                gene = gm.group(1) if gm else tx
                name = sm.group(1) if sm else gene
                gtype = bm.group(1) if bm else ("spike_in" if not gm else "")
            rows.append((tx, gene, name, gtype))
    if not rows:
        raise ValueError(f"{fasta}: no FASTA headers found")
    return pd.DataFrame(rows, columns=["transcript_id", "gene_id", "gene_name", "gene_type"])


def read_tx2gene(path: str | Path) -> pd.DataFrame:
    """Read a tx2gene table (TSV/CSV, optionally gzipped) into transcript_id, gene_id, gene_name, gene_type.

    Column names are recognised from the common conventions (tximport's TXNAME/GENEID, Ensembl's
    gene_biotype, ...). A two-column file without a header is taken as transcript, gene.
    """
    path = Path(path)
    sep = "," if ".csv" in path.name else "\t"
    df = pd.read_csv(path, sep=sep, dtype=str)

    def pick(options: tuple[str, ...]) -> str | None:
        return next((c for c in options if c in df.columns), None)

    tx_col, gene_col = pick(TX_COLUMNS), pick(GENE_COLUMNS)
    if tx_col is None or gene_col is None:
        if df.shape[1] == 2:  # headerless two-column file: the first row was data
            df = pd.read_csv(path, sep=sep, dtype=str, header=None, names=["transcript_id", "gene_id"])
            tx_col, gene_col = "transcript_id", "gene_id"
        else:
            raise ValueError(f"{path}: tx2gene needs transcript and gene columns "
                             f"(one of {TX_COLUMNS} and one of {GENE_COLUMNS}); found {list(df.columns)}")
    name_col, type_col = pick(NAME_COLUMNS), pick(TYPE_COLUMNS)
    out = pd.DataFrame({
        "transcript_id": df[tx_col],
        "gene_id": df[gene_col],
        "gene_name": df[name_col] if name_col else df[gene_col],
        "gene_type": df[type_col] if type_col else "",
    }).fillna("")
    if out["transcript_id"].duplicated().any():
        dup = out.loc[out["transcript_id"].duplicated(), "transcript_id"].iloc[0]
        raise ValueError(f"{path}: transcript {dup!r} maps to more than one gene")
    return out


def gene_order(tx2gene: pd.DataFrame, gene_table: pd.DataFrame | None = None) -> pd.DataFrame:
    """The fixed gene order: one row per gene of tx2gene, sorted by unversioned gene_id.

    Gene ids are stored without version so that references of different releases line up; the
    gene table (e.g. GENCODE), when given, supplies gene_name and gene_type.
    """
    genes = tx2gene.assign(gene_id=strip_version(tx2gene["gene_id"]))
    genes = genes.drop_duplicates("gene_id")[["gene_id", "gene_name", "gene_type"]]
    if gene_table is not None:
        table = gene_table.assign(gene_id=strip_version(gene_table["gene_id"].astype(str)))
        table = table.drop_duplicates("gene_id").set_index("gene_id")
        known = genes["gene_id"].isin(table.index)
        for col in ("gene_name", "gene_type"):
            if col in table.columns:
                genes.loc[known, col] = table.loc[genes.loc[known, "gene_id"], col].to_numpy()
    return genes.sort_values("gene_id", kind="stable").reset_index(drop=True)


def read_gene_table(path: str | Path) -> pd.DataFrame:
    """A gene annotation table with gene_id, gene_name, gene_type (GENCODE-derived TSV)."""
    df = pd.read_csv(path, sep="\t", dtype=str)
    missing = {"gene_id", "gene_name", "gene_type"} - set(df.columns)
    if missing:
        raise ValueError(f"{path}: gene table lacks columns {sorted(missing)}")
    return df
