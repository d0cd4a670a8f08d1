"""`medkd train` and `medkd evaluate`: every bundled model is reproducible from a config and a manifest."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .common import UserError, print_json


def _cmd_train(args: argparse.Namespace) -> None:
    from ..distill.config import TrainConfig, parse_override
    from ..distill.trainer import Trainer

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
    from ..models.card import ModelCard
    from ..models.registry import ModelRegistry

    if which in ("teacher", "student", "baseline"):
        return ModelRegistry().card(task, which)
    path = Path(which)
    if not path.is_file():
        raise UserError(f"no model card at {path}")
    return ModelCard.load(path)


def _cmd_evaluate(args: argparse.Namespace) -> None:
    import torch

    from ..distill.evaluate import evaluate_card
    from ..distill.trainer import default_cache_dir
    from ..models.registry import load_model
    from ..models.weights import ModelLoadError

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
        print_json(result)
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


def add_parsers(sub: Any) -> None:
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

    ev = sub.add_parser("evaluate", help="metrics of a model on a manifest (with bootstrap CIs)")
    ev.add_argument("--task", required=True)
    ev.add_argument("--manifest", required=True, help="CSV with path/label (or the fMRI map columns)")
    ev.add_argument("--split", help="train/val/test (default: every row)")
    ev.add_argument("--model", default="student", help="teacher|student|baseline or a card path")
    ev.add_argument("--device")
    ev.add_argument("--json", action="store_true")
    ev.set_defaults(func=_cmd_evaluate)
