"""`medkd pacs echo|find|get|send` and `medkd analyze --send-to`: thin wrappers over medkd_desktop.pacs.

A PacsError becomes one `error:` line and exit 2; a partial retrieval or send exits 3."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .audit import audit_failure, audit_pacs_send, audit_transfer
from .common import EXIT_BAD_INPUT, EXIT_PARTIAL, UserError, print_json


class _PacsAddress(argparse.Action):
    """``--server`` / ``--send-to``: parsed at once, so a typo exits 2 with one line before any work."""

    def __call__(self, parser, namespace, values, option_string=None):  # noqa: ANN001
        from ..pacs import PacsInputError, PacsServer

        try:
            setattr(namespace, self.dest, PacsServer.parse(values))
        except PacsInputError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(EXIT_BAD_INPUT) from None


def pacs_settings(args: argparse.Namespace) -> Any:
    from ..pacs import PacsSettings

    return PacsSettings(ae_title=args.aet, idle_timeout=getattr(args, "timeout", 30.0),
                        total_timeout=getattr(args, "total_timeout", 3600.0),
                        move_port=getattr(args, "port", None) or PacsSettings.move_port,
                        move_bind=getattr(args, "bind", None) or "").checked()


def _pacs_progress(label: str) -> Callable[[int, int | None], None] | None:
    """A one-line counter on stderr when it is a terminal (scripts and tests get no noise)."""
    if not sys.stderr.isatty():
        return None
    return lambda done, total: print(f"\r{label} {done}{'' if total is None else f' of {total}'}", end="",
                                     file=sys.stderr, flush=True)


def _pacs_command(func: Callable[[argparse.Namespace], int | None]) -> Callable[[argparse.Namespace], int | None]:
    def run(args: argparse.Namespace) -> int | None:
        from ..pacs import PacsError

        try:
            return func(args)
        except PacsError as exc:
            raise UserError(str(exc)) from None

    return run


@_pacs_command
def _cmd_pacs_echo(args: argparse.Namespace) -> None:
    from ..pacs import open_client

    result = open_client(args.server, pacs_settings(args)).echo()
    print(f"{result.server} answered in {result.elapsed_ms:.0f} ms")


@_pacs_command
def _cmd_pacs_find(args: argparse.Namespace) -> None:
    from ..pacs import StudyQuery, open_client, parse_date_range

    start, end = parse_date_range(args.date) if args.date else (None, None)
    query = StudyQuery(patient_id=args.patient_id or "", patient_name=args.patient_name or "", date_from=start,
                       date_to=end, modality=args.modality or "", accession_number=args.accession or "",
                       study_uid=args.study_uid or "")
    client = open_client(args.server, pacs_settings(args))
    if args.level == "series":
        series = client.find_series(query)
        if args.json:
            print_json([s.to_json() for s in series])
        for s in [] if args.json else series:
            print("  ".join([s.modality or "-", str(s.series_number if s.series_number is not None else "-"),
                             f"{s.n_instances if s.n_instances is not None else '?'} inst", s.description or "-",
                             s.study_uid, s.series_uid]))
        return
    studies = client.find_studies(query)
    if args.json:
        print_json([s.to_json() for s in studies])
        return
    for s in studies:  # identifiers on stdout: showing them is what `find` is for (never in the log)
        print("  ".join([s.study_date or "-", "/".join(s.modalities) or "-", s.patient_id or "-",
                         s.patient_name or "-", s.accession_number or "-", s.description or "-",
                         f"{s.n_instances if s.n_instances is not None else '?'} inst", s.study_uid]))


@_pacs_command
def _cmd_pacs_get(args: argparse.Namespace) -> int:
    from ..pacs import open_client

    client = open_client(args.server, pacs_settings(args))
    with audit_failure("pacs-retrieve", args.study_uid):
        result = client.retrieve(args.study_uid, args.series_uid, method="move" if args.move else "get",
                                 dest=Path(args.out) if args.out else None, progress=_pacs_progress("received"))
    audit_transfer("retrieve", args.study_uid, result.received, result.complete)
    if args.json:
        print_json(result.to_json())
    else:
        if sys.stderr.isatty():
            print(file=sys.stderr)
        expected = "?" if result.expected is None else result.expected
        print(f"received {result.received} of {expected} instance(s) into {result.folder}")
        for uid, folder in result.series_folders.items():
            print(f"  series {uid}: {sum(1 for p in result.images if p.parent == folder)} image(s)")
        if result.non_images:
            print(f"  {len(result.non_images)} instance(s) without pixel data (reports, presentation states) "
                  f"kept in {result.folder / 'non-image'}")
    if result.problem:
        print(f"error: {result.problem}", file=sys.stderr)
    return 0 if result.complete else EXIT_PARTIAL


@_pacs_command
def _cmd_pacs_send(args: argparse.Namespace) -> int:
    from ..pacs import open_client

    missing = [f for f in args.files if not Path(f).is_file()]
    if missing:
        raise UserError(f"file not found: {missing[0]}")
    with audit_failure("pacs-send"):
        result = open_client(args.server, pacs_settings(args)).store(args.files, progress=_pacs_progress("sent"))
    audit_pacs_send(args.files, result)
    if args.json:
        print_json(result.to_json())
    else:
        print(f"stored {len(result.stored)} of {len(args.files)} file(s) in {args.server}")
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for path, why in result.failed.items():
        print(f"error: {path}: {why}", file=sys.stderr)
    if result.failed:
        return EXIT_PARTIAL if result.stored else EXIT_BAD_INPUT
    return 0


def send_after_analyze(args: argparse.Namespace, written: Any) -> None:
    """``analyze --send-to``: C-STORE the Secondary Capture into its study; a failure is reported
    as a failed export (``errors["pacs"]``: an ``error:`` line, exit 3)."""
    if getattr(args, "send_to", None) is None:
        return
    from ..pacs import PacsError, open_client

    if "dicom" not in written.files:
        written.errors["pacs"] = "Nothing was sent to the PACS because no DICOM Secondary Capture was written."
        return
    from ..trust import audit

    uid = audit.dicom_study_uid(written.files["dicom"])
    try:
        result = open_client(args.send_to, pacs_settings(args)).store([written.files["dicom"]])
    except PacsError as exc:
        written.errors["pacs"] = str(exc)
        audit.record_transfer("send", uid, 0, error=exc)
        return
    audit.record_transfer("send", uid, len(result.stored), error="StoreFailed" if result.failed else None)
    if result.failed:
        written.errors["pacs"] = next(iter(result.failed.values()))


def add_parsers(sub: Any, analyze: argparse.ArgumentParser) -> None:
    from ..pacs import DEFAULT_AE_TITLE, DEFAULT_MOVE_PORT

    analyze.add_argument("--send-to", dest="send_to", action=_PacsAddress, metavar="AET@HOST:PORT",
                         help="after the exports, store the DICOM Secondary Capture in this PACS, in the study it "
                              "came from (or a DICOMweb URL)")
    analyze.add_argument("--aet", default=DEFAULT_AE_TITLE, help=f"MedKD's AE title for --send-to (default {DEFAULT_AE_TITLE})")

    pacs = sub.add_parser("pacs", help="query, retrieve and store studies on the hospital's PACS (DICOM or DICOMweb)")
    psub = pacs.add_subparsers(dest="pacs", required=True)

    def command(name: str, help_: str, func: Callable) -> argparse.ArgumentParser:
        p = psub.add_parser(name, help=help_)
        p.add_argument("--server", required=True, action=_PacsAddress, metavar="AET@HOST:PORT",
                       help="the PACS: AE title, host and port, or its DICOMweb URL (http://host/dicom-web)")
        p.add_argument("--aet", default=DEFAULT_AE_TITLE, help=f"MedKD's own AE title (default {DEFAULT_AE_TITLE})")
        p.add_argument("--timeout", type=float, default=30.0, help="seconds without an answer before giving up (default 30)")
        p.add_argument("--total-timeout", dest="total_timeout", type=float, default=3600.0,
                       help="seconds the whole command may take (default 3600)")
        p.set_defaults(func=func)
        return p

    command("echo", "test the connection (C-ECHO): says which setting to fix when it fails", _cmd_pacs_echo)
    find = command("find", "search studies (or series) on the PACS; prints patient names and IDs", _cmd_pacs_find)
    find.add_argument("--patient-id", dest="patient_id")
    find.add_argument("--patient-name", dest="patient_name", help="DICOM name, * and ? allowed (DOE^J*)")
    find.add_argument("--date", help="study date or range: YYYYMMDD, YYYYMMDD-YYYYMMDD, YYYYMMDD-, -YYYYMMDD")
    find.add_argument("--modality", help="e.g. CR, CT, MR")
    find.add_argument("--accession")
    find.add_argument("--study-uid", dest="study_uid")
    find.add_argument("--level", choices=("study", "series"), default="study")
    find.add_argument("--json", action="store_true")
    get = command("get", "retrieve a study or series (C-GET, or C-MOVE with --move)", _cmd_pacs_get)
    get.add_argument("--study-uid", dest="study_uid", required=True)
    get.add_argument("--series-uid", dest="series_uid")
    get.add_argument("--out", help="folder to write into, as <study>/<series>/<instance>.dcm (default: the user cache)")
    get.add_argument("--move", action="store_true", help="C-MOVE to MedKD's own storage port (servers without C-GET)")
    get.add_argument("--port", type=int, default=DEFAULT_MOVE_PORT,
                     help=f"the storage port for --move, as registered on the PACS (default {DEFAULT_MOVE_PORT})")
    get.add_argument("--bind", metavar="ADDRESS", help="the local address that port listens on (default: all)")
    get.add_argument("--json", action="store_true")
    send = command("send", "store DICOM files on the PACS (C-STORE, or STOW-RS)", _cmd_pacs_send)
    send.add_argument("files", nargs="+", metavar="FILE")
    send.add_argument("--json", action="store_true")
