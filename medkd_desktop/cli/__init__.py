"""`medkd`: headless commands over the same core the GUI uses.

Why a CLI: every figure the app shows must be reproducible from a terminal (and CI),
and a hospital IT person must be able to check a file without starting the GUI.
Exit status: 0 success; 2 bad input (one line ``error: <message>`` on stderr, never a
traceback); 3 partial (``medkd analyze``: the analysis was done and written, but an optional
export failed: its ``error:`` line is on stderr and the JSON lists it under ``errors``); 1 for
anything unexpected.

One module per command family, each with ``add_parsers(sub)``; the parser's help is the
command-line documentation.
"""
from __future__ import annotations

import argparse
import logging
import sys
import warnings
from collections.abc import Callable, Sequence

from ..studies import StudyLoadError
from . import analyze, audit, bench, info, models, pacs, retrain, selftest, train
from .common import EXIT_BAD_INPUT, UserError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medkd", description="MedKD Desktop headless tools (research use only).")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log more (-v info, -vv debug)")
    sub = parser.add_subparsers(dest="command", required=True)
    info.add_parsers(sub)
    bench.add_parsers(sub)
    train.add_parsers(sub)
    pacs.add_parsers(sub, analyze.add_parsers(sub))
    audit.add_parsers(sub)
    retrain.add_parsers(sub)
    models.add_parsers(sub)
    selftest.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # recorded in model cards
    level = (logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if not args.verbose:
        warnings.simplefilter("ignore")  # library warnings are for developers (-v shows them)
    func: Callable[[argparse.Namespace], int | None] = args.func
    try:
        code = func(args)
    except (StudyLoadError, UserError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return code or 0
