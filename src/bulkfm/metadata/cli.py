"""``bulkfm metadata ...``: harmonize, evaluate, impute-sex, bias, index."""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import replace
from pathlib import Path

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "metadata",
        help="harmonize sample metadata to ontology terms; evaluate; impute sex; bias report",
        description="Sample metadata harmonization (README, 'Metadata harmonization'): raw SRA/BioSample attributes or free "
                    "text -> one validated ontology record per sample, cheapest method first.",
    )
    sub = p.add_subparsers(dest="metadata_command", metavar="SUBCOMMAND", required=True)
    _add_harmonize(sub)
    _add_evaluate(sub)
    _add_impute_sex(sub)
    _add_bias(sub)
    _add_index(sub)


def _add_harmonize(sub: argparse._SubParsersAction) -> None:
    h = sub.add_parser(
        "harmonize",
        help="raw attributes/text -> harmonized.parquet (+ wide TSV, review queue, LLM report)",
        description="INPUT: JSONL, Parquet or TSV with sample_id (or SRA 'run') and 'attributes' "
                    "(object of raw key -> value, or its JSON text) or 'text'. OUT: Parquet with one row "
                    "per (sample_id, field): value, ontology_id, source, method, confidence.",
    )
    h.add_argument("input", help="sample attribute table (.jsonl[.gz], .parquet, .tsv)")
    h.add_argument("-o", "--output", required=True, help="harmonized Parquet (long: sample_id x field)")
    h.add_argument("--config", help="YAML file: the workflow config (its 'metadata' section is used) or that "
                                    "section alone; or that section as inline JSON text")
    h.add_argument("--wide", help="also write a wide, human-readable TSV here")
    h.add_argument("--review", help="write the review queue (fields below the confidence threshold) here")
    h.add_argument("--reviewed", help="curator-edited review TSV to read back (overrides config metadata.reviewed)")
    h.add_argument("--llm-report", help="write LLM calls/tokens/cost + run statistics (JSON) here")
    h.add_argument("--no-embedding", action="store_true", help="skip the embedding step (lexicon and rules only)")
    h.add_argument("--threads", type=int, help="CPU threads for the embedding model")
    h.set_defaults(func=_harmonize)


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser(
        "evaluate",
        help="score harmonization on labelled sets (MetaSRA JSONL, txt2onto JSONL)",
        description="Runs the harmonizer (no LLM unless --config enables it) on labelled records and prints "
                    "precision/recall per field and the confusion of the worst field. An answer at or below "
                    "the labelled term counts as right, an ancestor as partly right.",
    )
    e.add_argument("labelled", nargs="+", help="labelled JSONL(.gz) files (MetaSRA and/or txt2onto format)")
    e.add_argument("--config", help="metadata config YAML")
    e.add_argument("--no-embedding", action="store_true")
    e.add_argument("--limit", type=int, help="only the first N records of each file")
    e.add_argument("--out", help="write the metrics as JSON here")
    e.add_argument("--markdown", help="write the metrics as a markdown table here")
    e.add_argument("--threads", type=int)
    e.add_argument("--folds", type=int, metavar="K",
                   help="leave-study-out: split the records by study (GEO series; MetaSRA attribute-key set) into K "
                        "folds and report the mean and spread of the per-fold score, overall and per field, plus "
                        "the same on the studies that no bundled lexicon/table entry acts on")
    e.set_defaults(func=_evaluate)


def _add_impute_sex(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser(
        "impute-sex",
        help="predict sex from XIST + chrY expression; agreement with labels, conflicts flagged",
        description="Trains a logistic model on samples whose harmonized sex is female/male, predicts the "
                    "rest, reports cross-validated agreement with the labels and flags label/expression conflicts.",
    )
    s.add_argument("--matrix", required=True, help="expression matrix (bulkfm store dir, gene x sample Parquet, ARCHS4 HDF5)")
    s.add_argument("--labels", required=True,
                   help="harmonized.parquet, or a TSV with sample_id + sex (female/male/empty)")
    s.add_argument("-o", "--output", required=True, help="TSV: sample_id, label, predicted, probability, method, conflict")
    s.add_argument("--report", help="agreement report (JSON)")
    s.add_argument("--plot", help="PNG of the two expression features coloured by label")
    s.add_argument("--allow-missing-genes", action="store_true",
                   help="a matrix without XIST/chrY genes (e.g. a chr19-only demo) writes an empty table and a "
                        "report saying why, instead of failing")
    s.add_argument("--merged", help="write a copy of the harmonized.parquet given as --labels with sex filled from "
                                    "expression where it is empty (method 'imputed'); labels are never overwritten")
    s.set_defaults(func=_impute_sex)


def _add_bias(sub: argparse._SubParsersAction) -> None:
    b = sub.add_parser(
        "bias",
        help="counts, plots and missing shares by tissue, disease, sex, sample type, perturbation, study",
        description="Bias report of a harmonized table: per-field value counts (PNG per field), missing share "
                    "before (no raw key) and after harmonization, and a summary TSV.",
    )
    b.add_argument("harmonized", help="harmonized.parquet")
    b.add_argument("--input", help="the raw input table (for 'missing before' and the study column)")
    b.add_argument("--outdir", required=True, help="directory for PNGs")
    b.add_argument("--summary", required=True, help="summary TSV")
    b.set_defaults(func=_bias)


def _add_index(sub: argparse._SubParsersAction) -> None:
    i = sub.add_parser("index", help="build (or load) the cached ontology index and print its size",
                       description="Builds the ontology term index once into the cache directory "
                                   "($BULKFM_CACHE or ~/.cache/bulkfm); optionally embeds term labels.")
    i.add_argument("--config")
    i.add_argument("--embed", nargs="*", metavar="ONTOLOGY", help="also embed these ontologies' term strings")
    i.set_defaults(func=_index)


# ------------------------------------------------------------------------------------ helpers
def _user_error(msg: str):
    from bulkfm.cli import UserError

    return UserError(msg)


def _setup(config_path: str | None, no_embedding: bool = False, threads: int | None = None,
           reviewed: str | None = None):
    from bulkfm.metadata.config import load_config
    from bulkfm.metadata.embedding import Embedder
    from bulkfm.metadata.ontology import load_index
    from bulkfm.metadata.pipeline import Harmonizer
    from bulkfm.metadata.review import ReviewError, read_reviewed

    try:
        cfg = load_config(config_path)
    except (OSError, ValueError) as exc:
        raise _user_error(f"{exc}") from None
    try:
        index = load_index(cfg.ontologies, cfg.obo_files, cfg.cache_dir)
    except (FileNotFoundError, ValueError) as exc:
        raise _user_error(str(exc)) from None
    if no_embedding:
        cfg = replace(cfg, settings=replace(cfg.settings, embedding=False))
    embedder = (Embedder(index, cfg.cache_dir, threads=threads or cfg.embedding_threads,
                         synonyms_for=cfg.embedding_synonyms) if cfg.settings.embedding else None)
    try:
        rev = read_reviewed(reviewed or cfg.reviewed, index)
    except ReviewError as exc:
        raise _user_error(str(exc)) from None
    return cfg, index, Harmonizer(index, cfg.settings, cfg.llm, embedder, rev, cfg.resources)


def _harmonize(args: argparse.Namespace) -> int:
    from bulkfm.common.atomic import write_text_atomic
    from bulkfm.metadata.io import InputError, read_records, write_outputs
    from bulkfm.metadata.review import write_review

    t0 = time.perf_counter()
    if not Path(args.input).is_file():
        raise _user_error(f"input not found: {args.input}")
    try:  # validate the whole input before the (slower) index load: bad rows fail in a second
        n_in = sum(1 for _ in read_records(args.input))
    except InputError as exc:
        raise _user_error(str(exc)) from None
    log.info("%s: %d samples", args.input, n_in)
    cfg, index, harm = _setup(args.config, args.no_embedding, args.threads, args.reviewed)
    try:
        from tqdm import tqdm

        records = tqdm(read_records(args.input), desc="harmonize", unit=" samples", disable=None, mininterval=5)
        n = write_outputs(harm.harmonize(records), args.output, args.wide)
    except InputError as exc:
        raise _user_error(str(exc)) from None
    if args.review:
        write_review(harm.review_table(), args.review)
    llm = harm.llm.report
    llm.samples = n
    llm.calls_per_sample = round(llm.calls / n, 5) if n else 0.0
    report = {"llm": llm.to_dict(), "stats": harm.stats,
              "embedding": harm.embedder.stats if harm.embedder else None,
              "review_rows": len(harm.review), "seconds": round(time.perf_counter() - t0, 2),
              "ontology_versions": index.versions}
    if args.llm_report:
        write_text_atomic(args.llm_report, json.dumps(report, indent=2, default=str) + "\n")
    log.info("harmonized %d samples (%d unique attribute sets) in %.1fs; %d LLM calls; %d review rows",
             n, harm.stats["unique_sets"], time.perf_counter() - t0, llm.calls, len(harm.review))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from bulkfm.common.atomic import write_text_atomic
    import tempfile

    from bulkfm.metadata.evaluate import bare_resources, evaluate_files, format_report, markdown_lso, markdown_table
    from bulkfm.metadata.pipeline import Harmonizer

    if args.folds is not None and args.folds < 2:
        raise _user_error(f"--folds {args.folds}: needs at least 2 folds")
    cfg, index, harm = _setup(args.config, args.no_embedding, args.threads)
    for f in args.labelled:
        if not Path(f).is_file():
            raise _user_error(f"labelled file not found: {f}")
    with tempfile.TemporaryDirectory() as tmp:
        bare = None
        if args.folds:  # the same harmonizer without bundled entries: which studies they act on
            bare = Harmonizer(index, cfg.settings, None, harm.embedder, None, str(bare_resources(cfg.resources, tmp)))
        result = evaluate_files(args.labelled, harm, index, limit=args.limit, folds=args.folds, bare=bare)
    print(format_report(result))
    if args.out:
        write_text_atomic(args.out, json.dumps(result, indent=2, default=str) + "\n")
    if args.markdown:
        text = markdown_table(result)
        if args.folds:
            text += "\n\nLeave-study-out:\n\n" + markdown_lso(result)
        write_text_atomic(args.markdown, text + "\n")
    return 0


def _impute_sex(args: argparse.Namespace) -> int:
    from bulkfm.metadata.sex import SexImputationError, impute_sex_cli

    try:
        impute_sex_cli(args.matrix, args.labels, args.output, args.report, args.plot, args.allow_missing_genes,
                       args.merged)
    except (SexImputationError, FileNotFoundError) as exc:
        raise _user_error(str(exc)) from None
    return 0


def _bias(args: argparse.Namespace) -> int:
    from bulkfm.metadata.bias import bias_report

    if not Path(args.harmonized).is_file():
        raise _user_error(f"harmonized table not found: {args.harmonized}")
    bias_report(args.harmonized, args.outdir, args.summary, args.input)
    return 0


def _index(args: argparse.Namespace) -> int:
    from bulkfm.metadata.config import load_config
    from bulkfm.metadata.embedding import Embedder
    from bulkfm.metadata.ontology import load_index

    cfg = load_config(args.config)
    t0 = time.perf_counter()
    index = load_index(cfg.ontologies, cfg.obo_files, cfg.cache_dir)
    print(f"{len(index)} terms, {len(index.versions)} ontologies, {time.perf_counter() - t0:.1f}s")
    for o, v in index.versions.items():
        print(f"  {o}\t{v}")
    if args.embed is not None:
        emb = Embedder(index, cfg.cache_dir, threads=cfg.embedding_threads, synonyms_for=cfg.embedding_synonyms)
        for onto in args.embed or list(cfg.settings.embedding_ontologies):
            t1 = time.perf_counter()
            ov = emb.vectors(onto)
            print(f"  embedded {onto}: {len(ov.ids)} strings, {time.perf_counter() - t1:.1f}s")
    return 0
