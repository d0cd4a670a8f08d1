"""`medkd models list [--json] | activate ID | remove ID`: which student each task uses.

Activating a retrained version puts it to use at once (the window re-reads the choice); activating
the bundled id, or removing the active version, rolls the task back to the bundled student.
Every change is an audit entry (``model-activation``, ``model-removal``).
"""
from __future__ import annotations

import argparse
from typing import Any

from .common import UserError, print_json


def _cmd_list(args: argparse.Namespace) -> None:
    from ..retrain.manage import list_models

    rows = list_models()
    if args.json:
        print_json([r.to_dict() for r in rows])
        return
    print(f"{'task':16s} {'role':8s} {'':1s} {'id':44s} {'source':8s} accuracy")
    for r in rows:
        acc = "-" if r.accuracy is None else f"{100 * r.accuracy:.1f} %"
        print(f"{r.task:16s} {r.role:8s} {'*' if r.active else ' '} {r.id:44s} {r.source:8s} {acc}")
    print("* in use")


def _change(fn_name: str, args: argparse.Namespace) -> None:
    from ..retrain import manage
    from ..retrain.errors import RetrainError

    try:
        card = getattr(manage, fn_name)(args.id)
    except RetrainError as exc:
        raise UserError(str(exc)) from None
    print(f"{card.task} {card.role}: {card.id}")


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("models", help="list the installed models; activate or remove a retrained student")
    msub = p.add_subparsers(dest="models_command", required=True)
    ls = msub.add_parser("list", help="every model: task, role, id, bundled or user, in use or not")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=_cmd_list)
    act = msub.add_parser("activate", help="use this model for its task (the bundled id rolls back)")
    act.add_argument("id")
    act.set_defaults(func=lambda a: _change("activate", a))
    rm = msub.add_parser("remove", help="delete a retrained version (its task goes back to the bundled one)")
    rm.add_argument("id")
    rm.set_defaults(func=lambda a: _change("remove", a))
