"""The ``bulkfm`` command: one subcommand per workflow stage.

Each stage package exposes ``register(subparsers)`` in its ``cli`` module; this file only wires
them together, so a stage can be added without touching the others. A subcommand's handler is
stored as ``func`` on the parsed namespace and returns an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from bulkfm import __version__

# Order is the order of the workflow; shown in `bulkfm --help`.
STAGES: tuple[str, ...] = (
    "sra",
    "quant",
    "matrix",
    "metadata",
    "graph",
    "embed",
    "train",
    "evaluate",
    "generate",
    "report",
    "execution",
)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show defaults, but not the "None" of required or optional-without-default arguments."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.required:
            return action.help
        return super()._get_help_string(action)


# Old spellings -> the command that does it now (answered with exit code 2, not run).
MOVED: dict[tuple[str, ...], str] = {
    ("embed", "genes"): "bulkfm embed-genes",
    ("embed", "fetch-proteins"): "bulkfm fetch-proteins",
    ("embed-samples",): "bulkfm embed",
}


def moved(argv: Sequence[str]) -> str | None:
    """The message for a command spelled the old way, or None."""
    words = [a for a in argv if not a.startswith("-")][:2]
    for old, new in MOVED.items():
        if tuple(words[: len(old)]) == old and not (len(old) > 1 and Path(old[1]).is_dir()):
            what = ("`bulkfm embed` is the sample embedding of a trained model now"
                    if new != "bulkfm embed" else "the sample embedding is `bulkfm embed`")
            return (f"bulkfm {' '.join(old)}: this command was renamed; run `{new}` with the "
                    f"same arguments ({what})")
    return None


class UserError(Exception):
    """An error caused by input or configuration: printed without a traceback, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bulkfm",
        description="Public human bulk RNA-seq to a transcriptome foundation model.",
    )
    parser.add_argument("--version", action="version", version=f"bulkfm {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for stage in STAGES:
        try:
            module = importlib.import_module(f"bulkfm.{stage}.cli")
        except ModuleNotFoundError as exc:
            if exc.name == f"bulkfm.{stage}.cli":
                continue  # stage not built yet
            raise
        module.register(sub)
    return parser


def _exit_on_sigterm() -> None:
    """SIGTERM (a killed job, ``timeout``, scancel) exits through Python's cleanup, exit code 143,
    so that atomic outputs remove their temporaries; handlers a stage installs (train) win."""
    import signal

    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    message = moved(sys.argv[1:] if argv is None else argv)
    if message:
        print(message, file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    _exit_on_sigterm()
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"bulkfm {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    # `python -m bulkfm.cli` runs this file as __main__; the stages import bulkfm.cli, so use that
    # module's main (and its UserError), not a second copy.
    sys.exit(importlib.import_module("bulkfm.cli").main())
