"""`medkd`: headless commands over the same core the GUI uses.

Why a CLI: every figure the app shows must be reproducible from a terminal (and CI),
and a hospital IT person must be able to check a file without starting the GUI.
Exit status: 0 success, 2 bad input (one line ``error: <message>`` on stderr, never a
traceback), 1 for anything unexpected.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .paths import shared_data_dir
from .studies import StudyLoadError

EXIT_BAD_INPUT = 2


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


def _cmd_bench_load(args: argparse.Namespace) -> None:
    from .bench.load import bench_load

    root = Path(args.data) if args.data else shared_data_dir()
    if not root.exists():
        raise UserError(f"data folder not found: {root} (pass --data DIR)")
    result = bench_load(root, repeat=args.repeat)
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
                      command=["medkd", *args.argv])
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
    for name, sub in result.get("subsets", {}).items():
        print(f"  {name}: accuracy {sub['accuracy']:.4f} (n = {sub['n']})")
    for src, r in result["by_source"].items():
        print(f"  source {src}: accuracy {r['accuracy']:.4f} (n = {r['n']})")


def _cmd_bench_inference(args: argparse.Namespace) -> None:
    from .bench.inference import bench_inference

    result = bench_inference(repeat=args.repeat, threads=args.threads)
    if args.json:
        _print_json(result)
        return
    for task, r in result["tasks"].items():
        print(f"{task:<18} teacher {r['teacher_ms']:>8.2f} ms   student {r['student_ms']:>7.2f} ms   speed-up {r['speedup']:.1f}x")


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

    train = sub.add_parser("train", help="train a teacher, a baseline or a distilled student from a config")
    train.add_argument("--config", required=True, help="configs/<task>-<role>.toml")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key (TOML value)")
    train.add_argument("--epochs", type=int)
    train.add_argument("--limit", type=int, help="at most N images per split (quick runs)")
    train.add_argument("--out-dir", dest="out_dir", help="where weights + card go (default trained_models/<task>)")
    train.add_argument("--file-stem", dest="file_stem", help="weights/card file name (default: the role)")
    train.add_argument("--teacher", help="teacher card for distilled students")
    train.add_argument("--run-dir", help="checkpoint folder (default runs/<task>-<stem>)")
    train.add_argument("--data", help="shared data folder (default ../shared/data)")
    train.add_argument("--device", help="cpu or cuda (default: cuda if present)")
    train.set_defaults(func=_cmd_train)

    ev = sub.add_parser("evaluate", help="metrics of a model on a manifest (with bootstrap CIs)")
    ev.add_argument("--task", required=True)
    ev.add_argument("--manifest", required=True, help="CSV with path/label (or the fMRI map columns)")
    ev.add_argument("--split", help="train/val/test (default: every row)")
    ev.add_argument("--model", default="student", help="teacher|student|baseline or a card path")
    ev.add_argument("--device")
    ev.add_argument("--json", action="store_true")
    ev.set_defaults(func=_cmd_evaluate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # recorded in model cards
    level = (logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    func: Callable[[argparse.Namespace], None] = args.func
    try:
        func(args)
    except (StudyLoadError, UserError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
