"""`muaalem report FILE.json`: the terminal report of an assessment saved with `--json` (by
`muaalem assess --json` or the HTTP API), so that a saved answer reads as a live one did."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _show(args: argparse.Namespace) -> int:
    from google.protobuf import json_format

    from services.client.report import render
    from services.common.pb import gateway_pb2

    path = Path(args.file)
    try:
        text = path.read_text()
    except OSError as exc:
        print(f"cannot read {path}: {exc.strerror}", file=sys.stderr)
        return 2
    assessment = gateway_pb2.Assessment()
    try:
        json_format.Parse(text, assessment, ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        print(f"{path} is not an assessment's JSON: {exc}", file=sys.stderr)
        return 2
    render(assessment)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    report = subparsers.add_parser("report", help="print the report of an assessment saved with --json")
    report.add_argument("file", help="the assessment's proto3 JSON")
    report.set_defaults(handler=_show)
