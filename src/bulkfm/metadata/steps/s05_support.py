"""Step 5: evidence between fields, before deciding: a cell type supports the tissue it resides
in; a generic tissue part named beside an organ is that organ's part."""

from __future__ import annotations

from bulkfm.metadata.confidence import CONF
from bulkfm.metadata.ontology import norm
from bulkfm.metadata.records import Candidate, Candidates
from bulkfm.metadata.steps import SOURCE_CHARS, Tools

# Generic tissue parts that need an organ to name a place ('mucosa', 'cortex')
TISSUE_PARTS = frozenset({"mucosa", "epithelium", "stroma", "submucosa", "cortex", "medulla", "endothelium",
                          "lamina propria", "muscularis mucosa", "serosa", "parenchyma", "connective tissue"})


def cell_supports_tissue(tools: Tools, cands: Candidates) -> None:
    """A tissue candidate that a cell type candidate resides in gains support: 'hepatocytes
    ... liver resection ... stomach cancer' is liver tissue, not stomach."""
    tissues = {c.id for c in cands["tissue"] if c.id}
    for ct in list(cands["cell_type"]):
        home = tools.infer.tissue_from_cell_type(ct.id) if ct.id else None
        if home and any(t == home or tools.index.is_a(t, home) for t in tissues):
            cands["tissue"].append(Candidate(home, tools.index.label(home), f"{ct.source} (cell type)", "rule",
                                             round(CONF.cell_home_support * ct.confidence, 3), ct.raw))


def tissue_parts(tools: Tools, cands: Candidates) -> None:
    """A generic tissue part named beside an organ is that organ's part: 'normal mucosa ...
    esophagus' -> 'mucosa of esophagus', 'cortex ... kidney' -> 'cortex of kidney'."""
    found = {c.id: c for c in sorted(cands["tissue"], key=lambda c: c.confidence) if c.id}
    for part_id, part in list(found.items()):
        if norm(tools.index.label(part_id) or "") not in TISSUE_PARTS:
            continue
        for organ_id, organ in list(found.items()):
            if organ_id == part_id:
                continue
            tid = tools.infer.part_of(part_id, organ_id)
            if tid:
                hi, lo = max(part.confidence, organ.confidence), min(part.confidence, organ.confidence)
                conf = 1 - (1 - hi) * (1 - CONF.part_organ_support * lo)
                cands["tissue"].append(Candidate(tid, tools.index.label(tid),
                                                 f"{part.source}+{organ.source}"[:SOURCE_CHARS],
                                                 part.method, round(conf, 3), part.raw))
                break
