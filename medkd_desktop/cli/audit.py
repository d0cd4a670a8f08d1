"""`medkd audit [--since DATE] [--json]` and `medkd audit verify`, and the audit hooks of analyze
and pacs (medkd_desktop.trust.audit). Recording never fails a command: a failed append is a warning."""
from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from .common import UserError


def audit_analyze(analysis: Any, study: Any, pair: Any, written: Any) -> None:
    from ..trust import audit

    audit.record_analysis(analysis, pair, study)
    for kind in written.files:
        audit.record_export(kind, pair, study)
    for kind in written.errors:
        if kind != "pacs":
            audit.record_export(kind, pair, study, error="ReportError")


class audit_failure:  # noqa: N801 - used as a context manager, like a function
    """Record *event* as an error (class name only) when the block raises, then let it propagate."""

    def __init__(self, event: str, study_uid: str | None = None) -> None:
        self.event, self.study_uid = event, study_uid

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> bool:
        if exc is not None and not isinstance(exc, KeyboardInterrupt):
            from ..trust import audit

            audit.record(self.event, study_uid=self.study_uid,
                         error="AnalysisError" if isinstance(exc, SystemExit) else exc)
        return False


def audit_transfer(direction: str, study_uid: str | None, count: int, complete: bool) -> None:
    from ..trust import audit

    audit.record_transfer(direction, study_uid, count, result=None if complete else "partial")


def audit_pacs_send(files: Sequence[str], result: Any) -> None:
    from ..trust import audit

    by_study: dict[str | None, list[str]] = {}
    for f in files:
        by_study.setdefault(audit.dicom_study_uid(f), []).append(str(f))
    for uid, paths in by_study.items():
        failed = sum(1 for p in paths if p in result.failed)
        audit.record_transfer("send", uid, len(paths) - failed,
                              result="ok" if not failed else "partial" if failed < len(paths) else "error",
                              error="StoreFailed" if failed else None)


def _cmd_audit(args: argparse.Namespace) -> int:
    import datetime as dt

    from ..trust import audit

    if args.action == "verify":
        result = audit.verify()
        print(result.line())
        return 0 if result.ok else 1
    if args.action is not None:
        raise UserError(f"unknown audit action {args.action!r} (use verify, or nothing to list the log)")
    since = None
    if args.since:
        try:
            since = dt.datetime.fromisoformat(args.since)
        except ValueError:
            raise UserError(f"--since needs a date like 2026-01-31 (or 2026-01-31T08:00), not {args.since!r}") from None
    for entry in audit.read(since):
        print(json.dumps(entry, separators=(",", ":")) if args.json else audit.describe(entry))
    return 0


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("audit", help="print the audit log (no identifiers), or check it: medkd audit verify")
    p.add_argument("action", nargs="?", choices=("verify",),
                   help="verify: check the hash chain and the head (exit 0 intact, 1 broken)")
    p.add_argument("--since", help="only entries at or after this UTC date/time (YYYY-MM-DD[THH:MM])")
    p.add_argument("--json", action="store_true", help="print the entries as JSON lines")
    p.set_defaults(func=_cmd_audit)
