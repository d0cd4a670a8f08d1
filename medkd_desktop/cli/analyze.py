"""`medkd analyze` and `medkd explain`: the window's path, headless (review session, engine, exporters)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from . import batch
from .audit import audit_analyze, audit_failure
from .common import (
    EXIT_PARTIAL,
    UserError,
    add_overlay_args,
    analysis_device,
    make_out_dir,
    print_json,
)
from .pacs import send_after_analyze


def _frame_args(args: argparse.Namespace, study: Any) -> tuple[int, int | None]:
    """--volume / --slice (from 1) as engine indices, checked against the study."""
    if args.volume is not None and not 1 <= args.volume <= study.n_volumes:
        raise UserError(f"--volume must be between 1 and {study.n_volumes} for this study")
    if args.slice is not None and not 1 <= args.slice <= study.n_slices:
        raise UserError(f"--slice must be between 1 and {study.n_slices} for this study")
    return (args.volume or 1) - 1, None if args.slice is None else args.slice - 1


def _overlay_style(args: argparse.Namespace) -> Any:
    from ..explain.overlay import OverlayStyle

    chosen = {k: getattr(args, k) for k in ("colormap", "opacity", "threshold") if getattr(args, k) is not None}
    style = OverlayStyle(**chosen)
    if not 0.0 <= style.opacity <= 1.0 or not 0.0 <= style.threshold < 1.0:
        raise UserError("--opacity must lie in [0, 1] and --threshold in [0, 1)")
    return style


def _analyse(args: argparse.Namespace, methods: list[str], **engine_opts: Any) -> tuple[Any, Any, Any, Path]:
    """The window's path, headless: a review session proposes the pair, the engine analyses the frame.

    Returns (analysis, study, pair, the --out folder, made once the study has opened). Bad input
    exits 2; an engine failure that is not the input's fault exits 1, still with one readable line.
    """
    from ..inference.engine import (
        AnalysisError,
        Engine,
        IncompatibleStudyError,
        ModelUnavailableError,
    )
    from ..inference.session import ReviewSession
    from ..models.registry import ModelRegistry
    from ..studies import open_study

    study = open_study(args.path, series_uid=args.series)  # before torch loads models: bad files fail fast
    device = analysis_device(getattr(args, "device", None))
    volume, slice_ = _frame_args(args, study)
    session = ReviewSession(ModelRegistry(), forced_task=args.task)
    session.study = study
    proposal = session.propose()
    if proposal.task is None:
        raise UserError(proposal.note or "no task could be chosen; pass --task")
    for message in proposal.messages:
        print(f"warning: {message}", file=sys.stderr)
    out_dir = make_out_dir(args.out)
    session.volume, session.target = volume, args.target
    if slice_ is not None:  # else the middle slice, where the window opens too
        session.slice = slice_
    try:
        analysis = Engine(session.registry, device).analyze(**{**session.job().kwargs(), "methods": methods},
                                                            strip=False, **engine_opts)
    except (IncompatibleStudyError, ModelUnavailableError) as exc:
        raise UserError(str(exc)) from None
    except AnalysisError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    return analysis, study, session.pair, out_dir


def _cmd_analyze(args: argparse.Namespace) -> int:
    from ..report import analysis_json, export_analysis

    style = _overlay_style(args)
    if args.batch is not None:
        return batch.run_batch(args, style)
    if args.path is None:
        raise UserError("give a study PATH, or --batch DIR to analyse a folder of studies")
    if args.exports:
        raise UserError("--exports applies to --batch (a single analysis always writes its files)")
    with audit_failure("analysis"):
        analysis, study, pair, out_dir = _analyse(args, [args.method])
    written = export_analysis(analysis, study, pair, out_dir, args.method, style=style, pdf=not args.no_pdf,
                              show_identifiers=args.show_identifiers)
    audit_analyze(analysis, study, pair, written)
    send_after_analyze(args, written)
    if args.json:
        print_json({**analysis_json(analysis, study), "files": written.files, "errors": written.errors})
    else:
        for res in (analysis.teacher, analysis.student):
            p = float(res.probabilities[res.predicted_index])
            print(f"{res.role:>8}: {res.predicted} ({p:.1%})  {res.latency_ms:.1f} ms  [{res.name}]")
        for method, a in analysis.agreement.items():
            print(f"{'agreement':>8}: {method}  r {a.pearson:.2f}  SSIM {a.ssim:.2f}  top-20% IoU {a.iou_top20:.2f}")
        for w in analysis.warnings:
            print(f"{'warning':>8}: {w}")
        for kind, path in written.files.items():
            print(f"{kind:>8}: {path}")
    for kind, message in written.errors.items():
        print(f"error: the {kind} export failed: {message}", file=sys.stderr)
    return EXIT_PARTIAL if written.errors else 0


def _cmd_explain(args: argparse.Namespace) -> None:
    from ..bench.explain import jsonable
    from ..explain import list_methods
    from ..report.explain_files import explain_files

    names = list_methods() if args.method.strip() == "all" else [m.strip() for m in args.method.split(",") if m.strip()]
    unknown = [m for m in names if m not in list_methods()]
    if unknown or not names:
        raise UserError(f"Unknown explanation method {', '.join(unknown) or args.method!r}; choose from: "
                        f"{', '.join(list_methods())} (or 'all').")
    style = _overlay_style(args)
    args.target = _class_name(args)
    analysis, study, _, out_dir = _analyse(args, names, skip_inapplicable=True, faithfulness=args.faithfulness)
    roles = ("teacher", "student") if args.model == "both" else (args.model,)
    summary = jsonable(explain_files(analysis, study, roles, out_dir, style))
    json_path = out_dir / "explain.json"
    json_path.write_text(json.dumps(summary, indent=2) + "\n")
    if args.json:
        print_json(summary)
        return
    for role, m in summary["models"].items():
        print(f"{role:>8}: {m['predicted']} ({m['probabilities'][m['predicted']]:.1%})  [{m['name'] or m['card']}]")
    for method, entry in summary["methods"].items():
        for role in roles:
            e = entry.get(role, {})
            if "skipped" in e:
                print(f"{method:>12} {role:<8} skipped: {e['skipped']}")
            else:
                print(f"{method:>12} {role:<8} explains {e['target']}  {e['ms']:.1f} ms  {e['png']}")
        a = entry.get("agreement")
        if a:
            fmt = lambda v: "n/a" if v is None else f"{v:.2f}"  # noqa: E731
            print(f"{method:>12} agreement r {fmt(a['pearson'])}  SSIM {fmt(a['ssim'])}  top-20% IoU {fmt(a['iou_top20'])}")
    print(f"{'json':>12}: {json_path}")


def _class_name(args: argparse.Namespace) -> str | None:
    """--target as a class name; an index (``1``) is read against the task's classes."""
    if args.target is None or not args.target.isdigit():
        return args.target
    from ..models.registry import ModelRegistry
    from ..models.weights import ModelLoadError

    try:
        classes = ModelRegistry().card(args.task, "student").classes
    except ModelLoadError as exc:
        raise UserError(str(exc)) from None
    if int(args.target) >= len(classes):
        raise UserError(f"Unknown class {args.target!r}; this task's classes are: {', '.join(classes)}.")
    return classes[int(args.target)]


def add_parsers(sub: Any) -> argparse.ArgumentParser:
    """Returns `analyze`'s parser, which the PACS commands extend with --send-to."""
    an = sub.add_parser("analyze", help="teacher and student on one study (or a folder of them with --batch): "
                        "predictions, heatmaps, report files")
    an.add_argument("path", nargs="?", help="DICOM file or series folder, NIfTI, PNG/JPEG/TIFF")
    an.add_argument("--task", help="model pair to use (default: proposed from the study's modality; "
                    "required with --batch)")
    an.add_argument("--method", default="gradcam", help="explanation method (default gradcam)")
    an.add_argument("--target", help="class to explain in both models (default: each model's own prediction)")
    an.add_argument("--out", required=True, help="folder for the PNG, JSON, PDF (and DICOM SC for DICOM input); "
                    "with --batch: summary.csv (and with --exports one folder per study)")
    an.add_argument("--series", help="SeriesInstanceUID to open when a folder holds several")
    an.add_argument("--volume", type=int, help="volume / time point to analyse, from 1 (default 1)")
    an.add_argument("--slice", type=int, help="slice to analyse, from 1 (default: the middle one)")
    an.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda if present)")
    an.add_argument("--no-pdf", dest="no_pdf", action="store_true", help="skip the PDF report")
    an.add_argument("--show-identifiers", dest="show_identifiers", action="store_true",
                    help="print patient name, ID and birth date in the PDF (hidden by default)")
    an.add_argument("--json", action="store_true", help="print the analysis and the written files as JSON "
                    "(with --batch: one JSON line per study)")
    batch.add_arguments(an)
    add_overlay_args(an)
    an.set_defaults(func=_cmd_analyze)

    exp = sub.add_parser("explain", help="teacher and student heatmaps of one study, overlays and agreement figures")
    exp.add_argument("path", help="DICOM file or series folder, NIfTI, PNG/JPEG/TIFF")
    exp.add_argument("--task", required=True, help="model pair (models come from trained_models/, the user folder "
                     "and $MEDKD_MODEL_DIRS)")
    exp.add_argument("--method", required=True, help="explanation method, comma-separated list, or 'all'")
    exp.add_argument("--model", choices=("teacher", "student", "both"), default="both")
    exp.add_argument("--target", help="class name or index to explain (default: each model's own prediction)")
    exp.add_argument("--out", required=True, help="folder for the overlay PNGs and explain.json")
    exp.add_argument("--series", help="SeriesInstanceUID to open when a folder holds several")
    exp.add_argument("--volume", type=int, help="volume / time point, from 1 (default 1)")
    exp.add_argument("--slice", type=int, help="slice, from 1 (default: the middle one)")
    exp.add_argument("--faithfulness", action="store_true", help="also deletion and insertion AUC per map")
    exp.add_argument("--json", action="store_true", help="print the summary as JSON")
    exp.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda if present)")
    add_overlay_args(exp)
    exp.set_defaults(func=_cmd_explain)
    return an
