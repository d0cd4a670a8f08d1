"""`medkd selftest [--json]`: the installation's self-test from a console.

Why a console command as well as ``medkd-desktop --selftest``: on Windows the window's executable
has no stdout, so an IT person checking an installation runs ``medkd.exe selftest`` and reads
the result. It runs the same checks, the window's included (``medkd_desktop.ui.selftest_qt``).
"""
from __future__ import annotations

import argparse
from typing import Any


def _cmd_selftest(args: argparse.Namespace) -> int:
    from ..ui.selftest_qt import main as selftest_main

    return selftest_main(args.json)


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("selftest", help="check this installation (decoders, samples, models, reports, Qt); "
                                        "exit 0 only if every check passes")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=_cmd_selftest)
