"""Every `bulkfm ... --help` renders: no doubled '%%' left by argparse escaping in a text that is
not %-formatted, and no pointer to a document the repository does not ship."""

from __future__ import annotations

import argparse
from pathlib import Path

from bulkfm.cli import build_parser

REPO = Path(__file__).resolve().parents[1]


def _parsers(parser: argparse.ArgumentParser, name: str = "bulkfm"):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub, p in action.choices.items():
                yield from _parsers(p, f"{name} {sub}")


def test_help_texts_render_and_cite_only_shipped_docs():
    seen = 0
    for name, parser in _parsers(build_parser()):
        text = parser.format_help()
        seen += 1
        assert "%%" not in text, f"`{name} --help` prints a literal '%%'"
        assert "DESIGN.md" not in text or (REPO / "DESIGN.md").exists(), f"`{name} --help` cites DESIGN.md"
    assert seen > 10  # the subcommands were walked, not just the top level
    assert "15% masked genes" in dict(_parsers(build_parser()))["bulkfm train"].format_help()


def test_embed_is_the_sample_embedding_and_old_spellings_name_the_new_command(capsys):
    from bulkfm.cli import main

    parsers = dict(_parsers(build_parser()))
    assert "sample_embeddings.parquet" in parsers["bulkfm embed"].format_help()
    assert "--proteins" in parsers["bulkfm embed-genes"].format_help()
    assert "--url" in parsers["bulkfm fetch-proteins"].format_help()
    for old, new in ((["embed", "genes", "--proteins", "p.fa"], "bulkfm embed-genes"),
                     (["embed", "fetch-proteins", "--url", "u"], "bulkfm fetch-proteins"),
                     (["embed-samples", "runs/x", "--matrix", "m"], "bulkfm embed")):
        assert main(old) == 2
        err = capsys.readouterr().err
        assert f"run `{new}` with the same arguments" in err, (old, err)
