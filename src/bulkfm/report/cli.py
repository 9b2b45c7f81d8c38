"""CLI: ``bulkfm report`` gathers training + evaluation figures and tables into one folder."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "report", help="gather training/evaluation PNGs and tables into a report folder",
        description="Copies the training curves, reconstruction and t-SNE figures and the "
                    "metric tables into OUT and writes OUT/report.md.")
    p.add_argument("--train", required=True, help="bulkfm train output directory")
    p.add_argument("--evaluate", help="bulkfm evaluate output (default TRAIN/evaluate)")
    p.add_argument("-o", "--output", required=True, help="report directory to write")
    p.add_argument("--workflow-outdir", help="the workflow's outdir: the report then says what each "
                   "stage ran on (sample counts, the model's matrix, metadata filled, sex skipped)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bulkfm.cli import UserError
    from bulkfm.report.gather import build_report

    try:
        out = build_report(args.train, args.evaluate, args.output, args.workflow_outdir)
    except (ValueError, FileNotFoundError) as exc:
        raise UserError(str(exc)) from exc
    print(f"wrote {out}/report.md")
    return 0
