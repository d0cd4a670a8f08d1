"""`medkd`: headless commands over the same core the GUI uses.

Why a CLI: every figure the app shows must be reproducible from a terminal (and CI),
and a hospital IT person must be able to check a file without starting the GUI.
Exit status: 0 success; 2 bad input (one line ``error: <message>`` on stderr, never a
traceback); 3 partial (``medkd analyze``: the analysis was done and written, but an optional
export failed: its ``error:`` line is on stderr and the JSON lists it under ``errors``); 1 for
anything unexpected.

Length: over 500 lines because it is one argparse tree; every subcommand is a short
function over the core, and the parser's help is the command-line documentation in one place.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .paths import shared_data_dir
from .studies import StudyLoadError

EXIT_BAD_INPUT = 2
EXIT_PARTIAL = 3


class _ColormapNames:
    """argparse ``choices`` that import the overlay renderer (and so torch) only when asked:
    ``medkd info`` must not pay for it."""

    def _names(self) -> list[str]:
        from .explain.overlay import COLORMAPS

        return list(COLORMAPS)

    def __contains__(self, name: object) -> bool:
        return name in self._names()

    def __iter__(self):
        return iter(self._names())


def _add_overlay_args(p: argparse.ArgumentParser) -> None:
    """The review window's overlay controls, with its defaults (so files look like the screen)."""
    p.add_argument("--colormap", choices=_ColormapNames(), help="heat colours (default: the window's, inferno)")
    p.add_argument("--opacity", type=float, help="overlay opacity in [0, 1] (default: the window's, 0.45)")
    p.add_argument("--threshold", type=float,
                   help="heat below this is not drawn, in [0, 1) (default 0: the window's fade-in only)")


class UserError(Exception):
    """A problem with what the user asked for (bad path, bad option): exit 2, one line."""


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2))


def _cmd_info(args: argparse.Namespace) -> None:
    from .studies import open_study

    study = open_study(args.path, series_uid=args.series)
    summary = study.summary()
    if args.json:
        _print_json(summary)
        return
    window = summary["window"]
    lines = [
        ("kind", summary["kind"]),
        ("modality", summary["modality"]),
        ("frames", f"{summary['n_frames']} ({summary['n_volumes']} volume(s) x {summary['n_slices']} slice(s))"),
        ("shape", " x ".join(map(str, summary["shape"]))),
        ("photometric", summary["photometric"] or "-"),
        ("orientation", summary["orientation"]),
        ("window", f"center {window['center']:g}, width {window['width']:g}" if window else "- (colour)"),
        ("pixel spacing", " x ".join(f"{s:g}" for s in summary["pixel_spacing"]) + " mm" if summary["pixel_spacing"] else "-"),
    ]
    meta = summary["metadata"]
    for key in ("body_part", "view_position", "series_description", "manufacturer"):
        if meta.get(key):
            lines.append((key.replace("_", " "), meta[key]))
    if summary["tiles"]:
        t = summary["tiles"]
        lines.append(("tiles", f"{t['rows']} x {t['cols']} of {t['tile_size']} px"))
    if summary["maps"]:
        lines.append(("summary maps", ", ".join(summary["maps"])))
    if summary["series"]:
        lines.append(("series in folder", str(len(summary["series"]))))
    for key, value in lines:
        print(f"{key:>16}: {value}")
    for w in summary["warnings"]:
        print(f"{'warning':>16}: {w}")


def _measured(run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run a benchmark and record the CPU steal it ran under (warned about on stderr when high)."""
    from .bench.timing import STEAL_WARN_PCT, CpuSteal

    with CpuSteal() as steal:
        result = run()
    result["cpu_steal_pct"] = steal.pct
    if steal.pct is not None and steal.pct > STEAL_WARN_PCT:
        print(f"warning: the host took {steal.pct:.0f}% of the CPU during this run (virtual machine steal); "
              "timings are inflated, run again on a quieter machine", file=sys.stderr)
    return result


def _cmd_bench_load(args: argparse.Namespace) -> None:
    from .bench.load import bench_load

    root = Path(args.data) if args.data else shared_data_dir()
    if not root.exists():
        raise UserError(f"data folder not found: {root} (pass --data DIR)")
    result = _measured(lambda: bench_load(root, repeat=args.repeat))
    if args.json:
        _print_json(result)
        return
    for label, r in result["results"].items():
        if "median_ms" in r:
            print(f"{label:<40} {r['median_ms']:>9.1f} ms  ({r['n_frames']} frames, {r['kind']})")
        else:
            print(f"{label:<40} {r.get('error') or r.get('skipped')}")


def _cmd_train(args: argparse.Namespace) -> None:
    from .distill.config import TrainConfig, parse_override
    from .distill.trainer import Trainer

    overrides = dict(parse_override(o) for o in args.set)
    for key in ("epochs", "limit", "out_dir", "file_stem", "teacher"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    cfg_path = Path(args.config)
    if not cfg_path.is_file():
        raise UserError(f"config not found: {cfg_path}")
    try:
        cfg = TrainConfig.from_toml(cfg_path, overrides)
    except (ValueError, TypeError) as exc:
        raise UserError(f"bad config {cfg_path.name}: {exc}") from None

    def emit(event: dict) -> None:
        print(json.dumps(event), flush=True)

    trainer = Trainer(cfg, device=args.device, run_dir=Path(args.run_dir) if args.run_dir else None,
                      data_root=Path(args.data) if args.data else None, emit=emit,
                      command=["medkd", *args.argv], threads=args.threads)
    trainer.run()


def _resolve_model(task: str, which: str):
    """`teacher|student|baseline` from the registry, or a path to a card."""
    from .models.card import ModelCard
    from .models.registry import ModelRegistry

    if which in ("teacher", "student", "baseline"):
        return ModelRegistry().card(task, which)
    path = Path(which)
    if not path.is_file():
        raise UserError(f"no model card at {path}")
    return ModelCard.load(path)


def _cmd_evaluate(args: argparse.Namespace) -> None:
    import torch

    from .distill.evaluate import evaluate_card
    from .distill.trainer import default_cache_dir
    from .models.registry import load_model
    from .models.weights import ModelLoadError

    manifest = Path(args.manifest)
    if not manifest.is_file():
        raise UserError(f"manifest not found: {manifest}")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    try:
        card = _resolve_model(args.task, args.model)
        model = load_model(card, device)
        result = evaluate_card(card, model, manifest, args.split, device, cache_dir=default_cache_dir())
    except (ModelLoadError, ValueError) as exc:
        raise UserError(str(exc)) from None
    result = {"model": card.id, "split": args.split, **result}
    if args.json:
        _print_json(result)
        return
    ci = result["ci"]
    print(f"{card.id} on {manifest.name} ({args.split or 'all rows'}), n = {result['n']}")
    print(f"  accuracy {result['accuracy']:.4f}  95% CI [{ci['accuracy'][0]:.4f}, {ci['accuracy'][1]:.4f}]")
    print(f"  macro-F1 {result['macro_f1']:.4f}  95% CI [{ci['macro_f1'][0]:.4f}, {ci['macro_f1'][1]:.4f}]")
    if result["auc"] is not None:
        print(f"  AUC (one-vs-rest) {result['auc']:.4f}")
    print(f"  calibration (T = {result['temperature']:g}): ECE {result['ece']:.4f} (uncalibrated "
          f"{result['ece_uncalibrated']:.4f}), NLL {result['nll']:.4f}, Brier {result['brier']:.4f}")
    for name, sub in result.get("subsets", {}).items():
        print(f"  {name}: accuracy {sub['accuracy']:.4f} (n = {sub['n']})")
    for src, r in result["by_source"].items():
        print(f"  source {src}: accuracy {r['accuracy']:.4f} (n = {r['n']})")


def _cmd_bench_inference(args: argparse.Namespace) -> None:
    from .bench.inference import bench_inference

    result = _measured(lambda: bench_inference(repeat=args.repeat, threads=args.threads))
    if args.json:
        _print_json(result)
        return
    for task, r in result["tasks"].items():
        print(f"{task:<18} teacher {r['teacher_ms']:>8.2f} ms   student {r['student_ms']:>7.2f} ms   speed-up {r['speedup']:.1f}x")


def _analysis_device(requested: str | None) -> str | None:
    """Check a --device value before any model loads (None: CUDA if present, else CPU)."""
    if requested in (None, "auto"):
        return None
    import torch

    try:
        device = torch.device(requested)
    except (RuntimeError, ValueError):
        raise UserError(f"unknown device {requested!r} (use cpu, cuda or cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("CUDA was requested but no usable GPU was found (use --device cpu)")
    if device.type not in ("cpu", "cuda"):
        raise UserError(f"unsupported device {requested!r} (use cpu, cuda or cuda:N)")
    return str(device)


def _frame_args(args: argparse.Namespace, study: Any) -> tuple[int, int | None]:
    """--volume / --slice (from 1) as engine indices, checked against the study."""
    if args.volume is not None and not 1 <= args.volume <= study.n_volumes:
        raise UserError(f"--volume must be between 1 and {study.n_volumes} for this study")
    if args.slice is not None and not 1 <= args.slice <= study.n_slices:
        raise UserError(f"--slice must be between 1 and {study.n_slices} for this study")
    return (args.volume or 1) - 1, None if args.slice is None else args.slice - 1


def _out_dir(path: str) -> Path:
    out_dir = Path(path)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the output folder {out_dir}: {exc.strerror}") from None
    return out_dir


def _overlay_style(args: argparse.Namespace) -> Any:
    from .explain.overlay import OverlayStyle

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
    from .inference.engine import AnalysisError, Engine, IncompatibleStudyError, ModelUnavailableError
    from .inference.session import ReviewSession
    from .models.registry import ModelRegistry
    from .studies import open_study

    study = open_study(args.path, series_uid=args.series)  # before torch loads models: bad files fail fast
    device = _analysis_device(getattr(args, "device", None))
    volume, slice_ = _frame_args(args, study)
    session = ReviewSession(ModelRegistry(), forced_task=args.task)
    session.study = study
    proposal = session.propose()
    if proposal.task is None:
        raise UserError(proposal.note or "no task could be chosen; pass --task")
    for message in proposal.messages:
        print(f"warning: {message}", file=sys.stderr)
    out_dir = _out_dir(args.out)
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
    from .report import analysis_json, export_analysis

    style = _overlay_style(args)
    with _audit_failure("analysis"):
        analysis, study, pair, out_dir = _analyse(args, [args.method])
    written = export_analysis(analysis, study, pair, out_dir, args.method, style=style, pdf=not args.no_pdf,
                              show_identifiers=args.show_identifiers)
    _audit_analyze(analysis, study, pair, written)
    _pacs_send_after_analyze(args, written)
    if args.json:
        _print_json({**analysis_json(analysis, study), "files": written.files, "errors": written.errors})
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
    from .bench.explain import jsonable
    from .explain import list_methods
    from .report.explain_files import explain_files

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
        _print_json(summary)
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
    from .models.registry import ModelRegistry
    from .models.weights import ModelLoadError

    try:
        classes = ModelRegistry().card(args.task, "student").classes
    except ModelLoadError as exc:
        raise UserError(str(exc)) from None
    if int(args.target) >= len(classes):
        raise UserError(f"Unknown class {args.target!r}; this task's classes are: {', '.join(classes)}.")
    return classes[int(args.target)]


def _cmd_bench_explain(args: argparse.Namespace) -> None:
    from .bench.explain import bench_explain, jsonable
    from .explain import ExplainError

    root = Path(args.data) if args.data else shared_data_dir()
    if not root.exists():
        raise UserError(f"data folder not found: {root} (pass --data DIR)")
    methods = [m.strip() for m in args.methods.split(",")] if args.methods else None
    tasks = [t.strip() for t in args.tasks.split(",")] if args.tasks else None
    try:
        result = _measured(lambda: jsonable(bench_explain(
            data_root=root, n_images=args.images, methods=methods, tasks=tasks, threads=args.threads,
            steps=args.steps, batching=not args.no_batching)))
    except ExplainError as exc:
        raise UserError(str(exc)) from None
    if args.json:
        _print_json(result)
        return
    for task, methods_result in result["tasks"].items():
        if "skipped" in methods_result:
            print(f"{task:<18} skipped: {methods_result['skipped']}")
            continue
        for method, r in methods_result.items():
            if not isinstance(r, dict) or "teacher_ms" not in r and "student_ms" not in r:
                continue
            agree = r.get("agreement") or {}
            print(f"{task:<18} {method:<12} teacher {r.get('teacher_ms') or float('nan'):>9.1f} ms  "
                  f"student {r.get('student_ms') or float('nan'):>8.1f} ms  r {agree.get('pearson') or float('nan'):.2f}")
        for t in methods_result.get("targets", []):
            print(f"{task:<18} target {t['target']}: {'met' if t['met'] else 'NOT met'}")


def _cmd_bench_gui(args: argparse.Namespace) -> None:
    from .ui.bench_gui import bench_gui

    path = Path(args.path) if args.path else None
    if path is not None and not path.exists():
        raise UserError(f"study not found: {path}")
    _print_json(_measured(lambda: bench_gui(path, task=args.task, repeat=args.repeat, launch_runs=args.launch_runs)))


# ------------------------------------------------------------------------------------------ PACS
# `medkd pacs echo|find|get|send` and `medkd analyze --send-to`: thin wrappers over medkd_desktop.pacs.
# A PacsError becomes one `error:` line and exit 2; a partial retrieval or send exits 3.


class _PacsAddress(argparse.Action):
    """``--server`` / ``--send-to``: parsed at once, so a typo exits 2 with one line before any work."""

    def __call__(self, parser, namespace, values, option_string=None):  # noqa: ANN001
        from .pacs import PacsInputError, PacsServer

        try:
            setattr(namespace, self.dest, PacsServer.parse(values))
        except PacsInputError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(EXIT_BAD_INPUT) from None


def _pacs_settings(args: argparse.Namespace) -> Any:
    from .pacs import PacsSettings

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
        from .pacs import PacsError

        try:
            return func(args)
        except PacsError as exc:
            raise UserError(str(exc)) from None

    return run


@_pacs_command
def _cmd_pacs_echo(args: argparse.Namespace) -> None:
    from .pacs import open_client

    result = open_client(args.server, _pacs_settings(args)).echo()
    print(f"{result.server} answered in {result.elapsed_ms:.0f} ms")


@_pacs_command
def _cmd_pacs_find(args: argparse.Namespace) -> None:
    from .pacs import StudyQuery, open_client, parse_date_range

    start, end = parse_date_range(args.date) if args.date else (None, None)
    query = StudyQuery(patient_id=args.patient_id or "", patient_name=args.patient_name or "", date_from=start,
                       date_to=end, modality=args.modality or "", accession_number=args.accession or "",
                       study_uid=args.study_uid or "")
    client = open_client(args.server, _pacs_settings(args))
    if args.level == "series":
        series = client.find_series(query)
        if args.json:
            _print_json([s.to_json() for s in series])
        for s in [] if args.json else series:
            print("  ".join([s.modality or "-", str(s.series_number if s.series_number is not None else "-"),
                             f"{s.n_instances if s.n_instances is not None else '?'} inst", s.description or "-",
                             s.study_uid, s.series_uid]))
        return
    studies = client.find_studies(query)
    if args.json:
        _print_json([s.to_json() for s in studies])
        return
    for s in studies:  # identifiers on stdout: showing them is what `find` is for (never in the log)
        print("  ".join([s.study_date or "-", "/".join(s.modalities) or "-", s.patient_id or "-",
                         s.patient_name or "-", s.accession_number or "-", s.description or "-",
                         f"{s.n_instances if s.n_instances is not None else '?'} inst", s.study_uid]))


@_pacs_command
def _cmd_pacs_get(args: argparse.Namespace) -> int:
    from .pacs import open_client

    client = open_client(args.server, _pacs_settings(args))
    with _audit_failure("pacs-retrieve", args.study_uid):
        result = client.retrieve(args.study_uid, args.series_uid, method="move" if args.move else "get",
                                 dest=Path(args.out) if args.out else None, progress=_pacs_progress("received"))
    _audit_transfer("retrieve", args.study_uid, result.received, result.complete)
    if args.json:
        _print_json(result.to_json())
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
    from .pacs import open_client

    missing = [f for f in args.files if not Path(f).is_file()]
    if missing:
        raise UserError(f"file not found: {missing[0]}")
    with _audit_failure("pacs-send"):
        result = open_client(args.server, _pacs_settings(args)).store(args.files, progress=_pacs_progress("sent"))
    _audit_pacs_send(args.files, result)
    if args.json:
        _print_json(result.to_json())
    else:
        print(f"stored {len(result.stored)} of {len(args.files)} file(s) in {args.server}")
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for path, why in result.failed.items():
        print(f"error: {path}: {why}", file=sys.stderr)
    if result.failed:
        return EXIT_PARTIAL if result.stored else EXIT_BAD_INPUT
    return 0


def _pacs_send_after_analyze(args: argparse.Namespace, written: Any) -> None:
    """``analyze --send-to``: C-STORE the Secondary Capture into its study; a failure is reported
    as a failed export (``errors["pacs"]``: an ``error:`` line, exit 3)."""
    if getattr(args, "send_to", None) is None:
        return
    from .pacs import PacsError, open_client

    if "dicom" not in written.files:
        written.errors["pacs"] = "Nothing was sent to the PACS because no DICOM Secondary Capture was written."
        return
    from .trust import audit

    uid = audit.dicom_study_uid(written.files["dicom"])
    try:
        result = open_client(args.send_to, _pacs_settings(args)).store([written.files["dicom"]])
    except PacsError as exc:
        written.errors["pacs"] = str(exc)
        audit.record_transfer("send", uid, 0, error=exc)
        return
    audit.record_transfer("send", uid, len(result.stored), error="StoreFailed" if result.failed else None)
    if result.failed:
        written.errors["pacs"] = next(iter(result.failed.values()))


def _add_pacs_parsers(sub: Any, analyze: argparse.ArgumentParser) -> None:
    from .pacs import DEFAULT_AE_TITLE, DEFAULT_MOVE_PORT

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


# ----------------------------------------------------------------------------------------- audit
# `medkd audit [--since DATE] [--json]` and `medkd audit verify`, and the audit hooks of analyze
# and pacs (medkd_desktop.trust.audit). Recording never fails a command: a failed append is a warning.


def _audit_analyze(analysis: Any, study: Any, pair: Any, written: Any) -> None:
    from .trust import audit

    audit.record_analysis(analysis, pair, study)
    for kind in written.files:
        audit.record_export(kind, pair, study)
    for kind in written.errors:
        if kind != "pacs":
            audit.record_export(kind, pair, study, error="ReportError")


class _audit_failure:  # noqa: N801 - used as a context manager, like a function
    """Record *event* as an error (class name only) when the block raises, then let it propagate."""

    def __init__(self, event: str, study_uid: str | None = None) -> None:
        self.event, self.study_uid = event, study_uid

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> bool:
        if exc is not None and not isinstance(exc, KeyboardInterrupt):
            from .trust import audit

            audit.record(self.event, study_uid=self.study_uid,
                         error="AnalysisError" if isinstance(exc, SystemExit) else exc)
        return False


def _audit_transfer(direction: str, study_uid: str | None, count: int, complete: bool) -> None:
    from .trust import audit

    audit.record_transfer(direction, study_uid, count, result=None if complete else "partial")


def _audit_pacs_send(files: Sequence[str], result: Any) -> None:
    from .trust import audit

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

    from .trust import audit

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


def _add_audit_parser(sub: Any) -> None:
    p = sub.add_parser("audit", help="print the audit log (no identifiers), or check it: medkd audit verify")
    p.add_argument("action", nargs="?", choices=("verify",),
                   help="verify: check the hash chain and the head (exit 0 intact, 1 broken)")
    p.add_argument("--since", help="only entries at or after this UTC date/time (YYYY-MM-DD[THH:MM])")
    p.add_argument("--json", action="store_true", help="print the entries as JSON lines")
    p.set_defaults(func=_cmd_audit)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medkd", description="MedKD Desktop headless tools (research use only).")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log more (-v info, -vv debug)")
    sub = parser.add_subparsers(dest="command", required=True)

    info = sub.add_parser("info", help="describe a study (no patient identifiers)")
    info.add_argument("path", help="DICOM file or series folder, NIfTI, PNG/JPEG/TIFF")
    info.add_argument("--series", help="SeriesInstanceUID to open when a folder holds several")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(func=_cmd_info)

    bench = sub.add_parser("bench", help="benchmarks that print measured figures")
    bench_sub = bench.add_subparsers(dest="bench", required=True)
    load = bench_sub.add_parser("load", help="time opening each kind of study in the shared data")
    load.add_argument("--data", help="data folder (default: ../shared/data or $MEDKD_SHARED_DATA)")
    load.add_argument("--repeat", type=int, default=5, help="timed runs per file (median reported)")
    load.add_argument("--json", action="store_true")
    load.set_defaults(func=_cmd_bench_load)
    inf = bench_sub.add_parser("inference", help="teacher vs student latency per task (batch 1, median)")
    inf.add_argument("--repeat", type=int, default=30)
    inf.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: all cores)")
    inf.add_argument("--json", action="store_true")
    inf.set_defaults(func=_cmd_bench_inference)
    bex = bench_sub.add_parser("explain", help="per task and method: teacher/student explanation time, agreement, faithfulness")
    bex.add_argument("--images", type=int, default=20, help="test images per task (default 20)")
    bex.add_argument("--methods", help="comma-separated methods (default: all)")
    bex.add_argument("--tasks", help="comma-separated tasks (default: every task with models)")
    bex.add_argument("--steps", type=int, default=20, help="deletion/insertion steps (default 20)")
    bex.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: all cores)")
    bex.add_argument("--no-batching", dest="no_batching", action="store_true", help="skip the Score-CAM batching check")
    bex.add_argument("--data", help="shared data folder (default ../shared/data or $MEDKD_SHARED_DATA)")
    bex.add_argument("--json", action="store_true")
    bex.set_defaults(func=_cmd_bench_explain)
    bgui = bench_sub.add_parser("gui", help="review window: launch time, study to overlays, longest event-loop gap (JSON)")
    bgui.add_argument("--path", help="2-D study to open (default: the bundled histology tile)")
    bgui.add_argument("--task", help="model pair (default: proposed from the study)")
    bgui.add_argument("--repeat", type=int, default=5, help="timed opens (median reported)")
    bgui.add_argument("--launch-runs", dest="launch_runs", type=int, default=3, help="timed application starts")
    bgui.set_defaults(func=_cmd_bench_gui)

    train = sub.add_parser("train", help="train a teacher, a baseline or a distilled student from a config")
    train.add_argument("--config", required=True, help="configs/<task>-<role>.toml")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config key (TOML value); table.key sets one key of a table, "
                            "e.g. augment.mixup=0.2")
    train.add_argument("--epochs", type=int)
    train.add_argument("--limit", type=int, help="at most N images per split (quick runs)")
    train.add_argument("--out-dir", dest="out_dir", help="where weights + card go (default trained_models/<task>)")
    train.add_argument("--file-stem", dest="file_stem", help="weights/card file name (default: the role)")
    train.add_argument("--teacher", help="teacher card for distilled students")
    train.add_argument("--run-dir", help="checkpoint folder (default: the user cache dir, runs/<task>-<stem>)")
    train.add_argument("--data", help="shared data folder (default ../shared/data)")
    train.add_argument("--device", help="cpu or cuda (default: cuda if present)")
    train.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: all cores)")
    train.set_defaults(func=_cmd_train)

    an = sub.add_parser("analyze", help="teacher and student on one study: predictions, heatmaps, report files")
    an.add_argument("path", help="DICOM file or series folder, NIfTI, PNG/JPEG/TIFF")
    an.add_argument("--task", help="model pair to use (default: proposed from the study's modality)")
    an.add_argument("--method", default="gradcam", help="explanation method (default gradcam)")
    an.add_argument("--target", help="class to explain in both models (default: each model's own prediction)")
    an.add_argument("--out", required=True, help="folder for the PNG, JSON, PDF (and DICOM SC for DICOM input)")
    an.add_argument("--series", help="SeriesInstanceUID to open when a folder holds several")
    an.add_argument("--volume", type=int, help="volume / time point to analyse, from 1 (default 1)")
    an.add_argument("--slice", type=int, help="slice to analyse, from 1 (default: the middle one)")
    an.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda if present)")
    an.add_argument("--no-pdf", dest="no_pdf", action="store_true", help="skip the PDF report")
    an.add_argument("--show-identifiers", dest="show_identifiers", action="store_true",
                    help="print patient name, ID and birth date in the PDF (hidden by default)")
    an.add_argument("--json", action="store_true", help="print the analysis and the written files as JSON")
    _add_overlay_args(an)
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
    _add_overlay_args(exp)
    exp.set_defaults(func=_cmd_explain)

    ev = sub.add_parser("evaluate", help="metrics of a model on a manifest (with bootstrap CIs)")
    ev.add_argument("--task", required=True)
    ev.add_argument("--manifest", required=True, help="CSV with path/label (or the fMRI map columns)")
    ev.add_argument("--split", help="train/val/test (default: every row)")
    ev.add_argument("--model", default="student", help="teacher|student|baseline or a card path")
    ev.add_argument("--device")
    ev.add_argument("--json", action="store_true")
    ev.set_defaults(func=_cmd_evaluate)
    _add_pacs_parsers(sub, an)
    _add_audit_parser(sub)
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


if __name__ == "__main__":
    sys.exit(main())
