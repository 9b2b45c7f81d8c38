from __future__ import annotations

import time

from bulkfm.metadata.ontology import build_index, compact, load_index, norm


def test_index_has_every_ontology_and_real_terms(index):
    for onto in ("UBERON", "CL", "MONDO", "EFO", "PATO", "HsapDv", "CVCL", "CHEBI"):
        assert onto in index.versions
    assert index.label("UBERON:0002048") == "lung"
    assert index.label("CL:0000236") == "B cell"
    assert index.label("CVCL_0062") == "MDA-MB-231"
    assert index.label("PATO:0000461") == "normal"
    assert index.find("lung", ["UBERON"])[0][0] == "UBERON:0002048"
    assert index.find("Breast Cancer", ["MONDO"])[0][0] == "MONDO:0007254"
    assert index.find("HEK-293", ["CVCL"])[0][0] == "CVCL_0045"  # punctuation-insensitive names
    assert index.find("T cells", ["CL"])[0][0] == "CL:0000084"  # plural


def test_ancestors_depth_and_obsolete_replacement(index):
    # lung is below 'respiratory system' structures and 'organ'
    assert index.is_a("UBERON:0002048", "UBERON:0000062")
    assert not index.is_a("UBERON:0000062", "UBERON:0002048")
    assert index.distance("CL:0000624", "CL:0000084") >= 1  # CD4+ ab T cell is a T cell
    obsolete = [t for t in index.terms.values() if t.obsolete and t.replaced_by and t.replaced_by in index.terms]
    assert obsolete, "snapshots carry obsolete terms with replacements"
    t = obsolete[0]
    assert index.resolve(t.id) == index.resolve(t.replaced_by)
    assert not index.terms[index.resolve(t.id)].obsolete


def test_cached_index_loads_fast_and_equal(index, meta_cache):
    t0 = time.perf_counter()
    again = load_index(cache=meta_cache)
    assert time.perf_counter() - t0 < 30
    assert len(again) == len(index) > 400_000
    assert again.versions == index.versions


def test_obo_file_read_with_pronto_keeps_synonym_types_and_parents(index, tmp_path):
    # a real OBO file written from the CL snapshot (T cell lineage), read back with pronto
    ids = [t.id for t in index.terms.values() if t.ontology == "CL" and not t.obsolete and t.label
           and (t.id == "CL:0000084" or index.is_a(t.id, "CL:0000084"))][:80]
    keep = set(ids)
    lines = ["format-version: 1.2", "ontology: cl", ""]
    for tid in ids:
        t = index.terms[tid]
        lines += ["[Term]", f"id: {tid}", f"name: {t.label}"]
        for s in t.all_synonyms()[:3]:
            lines.append(f'synonym: "{s}" EXACT []')
        lines += [f"is_a: {p}" for p in t.parents if p in keep]
        lines.append("")
    obo = tmp_path / "cl_subset.obo"
    obo.write_text("\n".join(lines))
    small = build_index(ontologies=(), obo_files={"CL": str(obo)})
    assert small.versions["CL"].startswith("file:cl_subset.obo")
    assert small.label("CL:0000624") == index.label("CL:0000624")
    assert small.is_a("CL:0000624", "CL:0000084")
    syn = small.terms["CL:0000624"].synonyms
    assert "exact" in syn and syn["exact"]
    assert small.find("CD4-positive, alpha-beta T lymphocyte", ["CL"])[0][0] == "CL:0000624"


def test_norm_and_compact():
    assert norm("T-Cell,  CD4+") == "t cell cd4"
    assert compact("HEK-293 T") == "hek293t"
