"""`medkd retrain`: distil a new student on the site's own labelled images (see retrain.run).

Output: JSON lines (``start``, ``reading``, ``summary``, ``progress``, ``epoch``, ``calibrated``,
``done`` or ``stopped``) on stdout and in the run folder's ``events.jsonl``. On a terminal without
``--json`` a progress line replaces them on stdout. Exit status: 0 done (or the summary of
``--dry-run``), 2 bad input (one ``error:`` line), 4 stopped (the same command resumes).

Stop: create the run folder's ``STOP`` file (the panel does) or send SIGTERM/SIGINT; the epoch
in progress is dropped, the checkpoint of the last finished epoch is kept.

Under ``torchrun --nproc_per_node N -m medkd_desktop.cli retrain …`` every process joins one
process group (gloo on the CPU, nccl on GPUs) and rank 0 alone writes.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from .common import UserError, analysis_device

EXIT_STOPPED = 4


class _Human:
    """One progress line on a terminal (stdout), and the warnings and the result in words."""

    def __init__(self) -> None:
        self.width = 28

    def __call__(self, e: dict[str, Any]) -> None:
        kind = e["event"]
        if kind == "reading":
            self._bar(e["done"] / max(1, e["total"]), f"reading {e['done']}/{e['total']} files")
        elif kind == "summary":
            print()
            for split, counts in e["counts"].items():
                print(f"  {split:5s} " + "  ".join(f"{c} {n}" for c, n in counts.items()))
            for s in e["skipped"][:10]:
                print(f"  skipped {s['path']}: {s['reason']}")
            for w in e["warnings"]:
                print(f"  warning: {w}")
        elif kind == "progress":
            frac = ((e["epoch"] - 1) * e["steps"] + e["step"]) / (e["epochs"] * e["steps"])
            self._bar(frac, f"epoch {e['epoch']}/{e['epochs']} loss {e['loss']:.4f} ETA {_eta(e['eta_s'])}")
        elif kind == "epoch":
            print(f"\r  epoch {e['epoch']}/{e['epochs']}: train loss {e['train_loss']:.4f}, val accuracy "
                  f"{e['val']['accuracy']:.3f}, macro-F1 {e['val']['macro_f1']:.3f}" + " " * 20)
        elif kind == "stopped":
            print(f"\nstopped after epoch {e['epoch']}; {e['resume']}")
        elif kind == "done":
            c = e["comparison"]["models"]
            print(f"\ninstalled {e['model']['id']} (not active: `medkd models activate {e['model']['id']}`)")
            for role in ("new", "bundled", "teacher"):
                print(f"  {role:8s} accuracy {c[role]['accuracy']:.3f}  macro-F1 {c[role]['macro_f1']:.3f}")
            d = e["comparison"].get("new_minus_bundled")
            if d:
                print(f"  new - bundled: accuracy {d['accuracy']:+.3f} [{d['accuracy_ci'][0]:+.3f}, {d['accuracy_ci'][1]:+.3f}]")
        sys.stdout.flush()

    def _bar(self, frac: float, text: str) -> None:
        n = int(round(self.width * min(1.0, frac)))
        print(f"\r[{'#' * n}{'.' * (self.width - n)}] {text}" + " " * 8, end="")


def _eta(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m // 60}h{m % 60:02d}" if m >= 60 else f"{m}:{s:02d}"


def _init_distributed() -> None:
    """Join torchrun's process group (its environment says so); nothing in a plain run."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")


def _cmd_retrain(args: argparse.Namespace) -> int:
    from ..retrain.errors import RetrainError
    from ..retrain.run import RetrainRequest, run_retrain

    device = analysis_device(args.device)
    _init_distributed()
    stop = {"flag": False}

    def on_signal(signum: int, frame: Any) -> None:
        stop["flag"] = True

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    req = RetrainRequest(task=args.task, data=Path(args.data).expanduser().resolve(), epochs=args.epochs,
                         loss=args.loss, init=args.init, name=args.name or "", device=device, seed=args.seed,
                         lr=args.lr, batch_size=args.batch_size, threads=args.threads,
                         run_dir=Path(args.run_dir) if args.run_dir else None, command=("medkd", *args.argv),
                         finish=args.finish, dry_run=args.dry_run)
    human = sys.stdout.isatty() and not args.json

    def emit(event: dict[str, Any]) -> None:
        if human:
            _Human()(event)
        else:
            print(json.dumps(event), flush=True)

    try:
        outcome = run_retrain(req, emit, lambda: stop["flag"])
    except RetrainError as exc:
        raise UserError(str(exc)) from None
    finally:
        try:
            import torch.distributed as dist

            if dist.is_available() and dist.is_initialized():
                dist.destroy_process_group()
        except Exception:  # noqa: BLE001
            pass
    return EXIT_STOPPED if outcome.state == "stopped" else 0


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("retrain", help="distil a new student on your own labelled images (folder per class or CSV)",
                       description="Distil a new student from the task's bundled teacher on your own images, compare it "
                                   "with the bundled student on your held-out patients, and install it as a version "
                                   "(`medkd models activate ID` puts it to use). Exit 4: stopped, run it again to resume.")
    p.add_argument("--task", required=True, help="the task whose teacher teaches (see `medkd models list`)")
    p.add_argument("--data", required=True, help="a folder with one subfolder per class, or a CSV "
                                                 "path,label[,patient_id][,split]")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--loss", help="a registered distillation loss (default: the task's paper loss)")
    p.add_argument("--init", choices=("bundled", "scratch"), default="bundled",
                   help="start from the bundled student (fine-tuning, default) or from random weights")
    p.add_argument("--name", help="a short name for the new version (default: the date and time)")
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda if present)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: all cores)")
    p.add_argument("--seed", type=int, default=0, help="splits, shuffling and augmentation")
    p.add_argument("--lr", type=float, help="peak learning rate (default: the bundled config's, a tenth of it when "
                                            "fine-tuning)")
    p.add_argument("--batch-size", dest="batch_size", type=int)
    p.add_argument("--run-dir", dest="run_dir", help="the run folder (default: <user cache>/retrain/<task>)")
    p.add_argument("--finish", action="store_true",
                   help="train no further: compare and install the best epoch of a stopped run")
    p.add_argument("--dry-run", dest="dry_run", action="store_true", help="read the data and print the summary only")
    p.add_argument("--json", action="store_true", help="JSON lines on stdout even on a terminal")
    p.set_defaults(func=_cmd_retrain)
