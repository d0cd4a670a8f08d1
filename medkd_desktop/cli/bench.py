"""`medkd bench load|inference|explain|gui`: the measured figures behind the docs."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..paths import shared_data_dir
from .common import UserError, measured, print_json


def _cmd_bench_load(args: argparse.Namespace) -> None:
    from ..bench.load import bench_load

    root = Path(args.data) if args.data else shared_data_dir()
    if not root.exists():
        raise UserError(f"data folder not found: {root} (pass --data DIR)")
    result = measured(lambda: bench_load(root, repeat=args.repeat))
    if args.json:
        print_json(result)
        return
    for label, r in result["results"].items():
        if "median_ms" in r:
            print(f"{label:<40} {r['median_ms']:>9.1f} ms  ({r['n_frames']} frames, {r['kind']})")
        else:
            print(f"{label:<40} {r.get('error') or r.get('skipped')}")


def _cmd_bench_inference(args: argparse.Namespace) -> None:
    from ..bench.inference import bench_inference

    result = measured(lambda: bench_inference(repeat=args.repeat, threads=args.threads))
    if args.json:
        print_json(result)
        return
    for task, r in result["tasks"].items():
        print(f"{task:<18} teacher {r['teacher_ms']:>8.2f} ms   student {r['student_ms']:>7.2f} ms   speed-up {r['speedup']:.1f}x")


def _cmd_bench_explain(args: argparse.Namespace) -> None:
    from ..bench.explain import bench_explain, jsonable
    from ..explain import ExplainError

    root = Path(args.data) if args.data else shared_data_dir()
    if not root.exists():
        raise UserError(f"data folder not found: {root} (pass --data DIR)")
    methods = [m.strip() for m in args.methods.split(",")] if args.methods else None
    tasks = [t.strip() for t in args.tasks.split(",")] if args.tasks else None
    try:
        result = measured(lambda: jsonable(bench_explain(
            data_root=root, n_images=args.images, methods=methods, tasks=tasks, threads=args.threads,
            steps=args.steps, batching=not args.no_batching, split=args.split)))
    except ExplainError as exc:
        raise UserError(str(exc)) from None
    if args.json:
        print_json(result)
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
    from ..ui.bench_gui import bench_gui

    path = Path(args.path) if args.path else None
    if path is not None and not path.exists():
        raise UserError(f"study not found: {path}")
    print_json(measured(lambda: bench_gui(path, task=args.task, repeat=args.repeat, launch_runs=args.launch_runs)))


def add_parsers(sub: Any) -> None:
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
    bex.add_argument("--images", type=int, default=20, help="images per task (default 20)")
    bex.add_argument("--split", choices=("test", "val"), default="test",
                     help="manifest split (default test; val to compare training levers)")
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
