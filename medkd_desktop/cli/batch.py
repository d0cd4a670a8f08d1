"""`medkd analyze --batch DIR --task T --out OUT [--json] [--exports]`: triage a whole folder.

Every study under DIR (medkd_desktop.inference.batch.discover) goes through one engine with
the pair of --task, loaded once. Per study: a JSON line on stdout with --json (else one short
line), a row of OUT/summary.csv (rewritten atomically as the batch goes, so an interrupted batch
leaves a readable table), an audit entry as for a single `medkd analyze`, and with --exports the
usual files in OUT/<study-name>/. A study that cannot be read or analysed is reported (its line,
its row, and `error: PATH: reason` on stderr) and the batch goes on.

Exit status: 0 every study analysed; 3 some failed (or an export failed) but others were
analysed; 2 DIR missing, no studies in it, a bad option, or no study could be analysed.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from .audit import audit_analyze
from .common import EXIT_BAD_INPUT, EXIT_PARTIAL, UserError, analysis_device, make_out_dir

SUMMARY_NAME = "summary.csv"
#: Single-study options that have no meaning for a whole folder.
_SINGLE_ONLY = {"series": "--series", "volume": "--volume", "slice": "--slice", "send_to": "--send-to",
                "show_identifiers": "--show-identifiers"}


class _NoExports:
    """What ``audit_analyze`` reads when nothing was exported."""

    files: dict[str, str] = {}
    errors: dict[str, str] = {}


def _check_args(args: argparse.Namespace) -> Path:
    if args.path is not None:
        raise UserError("give either a study PATH or --batch DIR, not both")
    if not args.task:
        raise UserError("--batch needs --task: one model pair analyses the whole folder")
    for dest, flag in _SINGLE_ONLY.items():
        if getattr(args, dest, None) not in (None, False):
            raise UserError(f"{flag} applies to one study and cannot be used with --batch")
    root = Path(args.batch)
    if not root.is_dir():
        raise UserError(f"the batch folder {root} does not exist" if not root.exists()
                        else f"--batch needs a folder; {root} is a file (analyse it without --batch)")
    if Path(args.out).resolve() == root.resolve():  # its exports would be read as studies next time
        raise UserError("--out must not be the batch folder itself; choose a new folder (it may lie inside it)")
    return root


def _progress(total: int) -> Any:
    """A progress bar on stderr when it is a terminal (tqdm); silent otherwise."""
    from tqdm import tqdm

    return tqdm(total=total, file=sys.stderr, unit="study", desc="analysing", dynamic_ncols=True,
                disable=not sys.stderr.isatty(), leave=False)


def _audit_failure(outcome: Any) -> None:
    from ..trust import audit

    uid = getattr(getattr(outcome.study, "metadata", None), "study_uid", None) or None
    kind = (type(outcome.exception).__name__ if outcome.exception is not None
            else outcome.item.error_type or "IncompatibleStudyError")
    audit.record("analysis", models=audit.pair_models(outcome.pair), study_uid=uid, error=kind)


def _export(outcome: Any, folder: Path, args: argparse.Namespace, style: Any) -> Any:
    """The single analysis' files (``report.export_analysis``) in the study's own folder."""
    from ..report import ExportResult, export_analysis

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return ExportResult(errors={"exports": f"The folder {folder} could not be created ({exc.strerror})."})
    return export_analysis(outcome.analysis, outcome.study, outcome.pair, folder, args.method, style=style,
                           pdf=not args.no_pdf)


def _short(line: dict[str, Any]) -> str:
    """One line per study without --json."""
    if line["teacher"] is None:
        return f"failed  {line['path']}"
    t, s = line["teacher"], line["student"]
    agree = "agree" if line["same_class"] else "DISAGREE"
    where = line["path"] + (f" [{line['series']}]" if line["series"] else "")
    return (f"{agree:<8}  {where}  teacher {t['predicted']} ({t['probabilities'][t['predicted']]:.0%})  "
            f"student {s['predicted']} ({s['probabilities'][s['predicted']]:.0%})")


def run_batch(args: argparse.Namespace, style: Any) -> int:
    from ..inference.batch import (
        BatchRunner,
        SummaryTable,
        TriageRow,
        discover,
        error_text,
        export_names,
        study_line,
    )
    from ..inference.engine import ModelUnavailableError
    from ..models.registry import ModelRegistry

    root = _check_args(args)
    device = analysis_device(getattr(args, "device", None))
    registry = ModelRegistry()
    if args.task not in registry.paired_tasks():
        raise UserError(f"No models are installed for task {args.task!r} "
                        f"(installed: {', '.join(registry.paired_tasks()) or 'none'}).")
    classes = registry.pair(args.task).teacher.classes
    if args.target is not None and args.target not in classes:
        raise UserError(f"the {args.task} models have no class {args.target!r}; choose from: {', '.join(classes)}")
    found = discover(root, exclude=[Path(args.out)])
    if not found.studies:
        notes = f" ({'; '.join(found.notes())})" if found.notes() else ""
        raise UserError(f"no studies found under {root}{notes}")
    runner = BatchRunner(args.task, registry=registry, device=device, method=args.method, target=args.target)
    try:
        runner.load()
    except ModelUnavailableError as exc:
        raise UserError(str(exc)) from None
    out_dir = make_out_dir(args.out)
    names = export_names(found.studies) if args.exports else {}
    table = SummaryTable(out_dir / SUMMARY_NAME, classes)
    n_ok = n_failed = 0
    t0 = time.perf_counter()
    bar = _progress(len(found.studies))
    try:
        for item in found.studies:
            outcome = runner.run(item)
            written: Any = _export(outcome, out_dir / names[item], args, style) if outcome.ok and args.exports \
                else _NoExports()
            if outcome.ok:
                audit_analyze(outcome.analysis, outcome.study, outcome.pair, written)
                n_ok += 1
            else:
                _audit_failure(outcome)
                n_failed += 1
            line = study_line(outcome, args.method, written.errors)
            if args.exports and outcome.ok:
                line["files"] = dict(written.files)
            bar.write(json.dumps(line) if args.json else _short(line), file=sys.stdout)
            sys.stdout.flush()
            for step, why in line["errors"].items():
                bar.write(f"error: {item.rel}: {error_text(step, why)}", file=sys.stderr)
            table.add(TriageRow.from_line(line))
            bar.set_postfix_str(f"{n_failed} failed" if n_failed else "", refresh=False)
            bar.update()
    finally:
        bar.close()
        table.close()
    seconds = time.perf_counter() - t0
    partial = any(r.error for r in table.rows)
    total = len(found.studies)
    print(f"{n_ok} of {total} studies analysed in {seconds:.1f} s ({total / max(seconds, 1e-9):.2f} studies/s)"
          f"{f', {n_failed} failed' if n_failed else ''}; summary: {table.path}"
          + "".join(f"; {note}" for note in found.notes()), file=sys.stderr)
    if n_ok == 0:
        print(f"error: none of the {total} studies under {root} could be analysed with the {args.task} models",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    return EXIT_PARTIAL if partial else 0


def add_arguments(an: argparse.ArgumentParser) -> None:
    """``analyze``'s batch options."""
    an.add_argument("--batch", metavar="DIR",
                    help="analyse every study under DIR (recursive; the DICOM files of one series are one study) "
                         "with the --task pair, write OUT/summary.csv and, with --json, one JSON line per study")
    an.add_argument("--exports", action="store_true",
                    help="with --batch: also write each study's PNG, PDF, JSON (and DICOM SC) into OUT/<study-name>/")
