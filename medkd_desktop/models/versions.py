"""Model versions in the user's folder, and which one each task uses.

Why a separate activation file rather than "the newest card wins": a student retrained on a
site's images is installed when its run ends, but used only when a person decides so after
reading its comparison ("Use this student"), and the bundled one must stay one step away
(rollback). So ``<user model folder>/active.json`` holds ``{task: {role: card id}}``; a role
without an entry uses its default card (bundled, or one in ``MEDKD_MODEL_DIRS``). The file is
replaced atomically (temp + rename), so a reader never sees half of it, and every registry
re-reads it on ``refresh()``.

A *version* is a card whose ``training`` holds a ``retrain`` record (written by
``medkd retrain``). This module only reads and writes files; auditing the changes belongs to the
callers above it (``retrain.manage``).
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

ACTIVE_NAME = "active.json"


def active_file_path() -> Path:
    from .registry import user_models_dir

    return user_models_dir() / ACTIVE_NAME


def is_version(card: Any) -> bool:
    return bool(getattr(card, "training", {}).get("retrain"))


def read_active(path: Path | None = None) -> dict[str, dict[str, str]]:
    """The activation map; an unreadable file counts as empty (every task on its default card)
    with a warning, rather than stopping the app."""
    path = path or active_file_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable %s (%s): every task uses its default models", path.name, type(exc).__name__)
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(t): {str(r): str(i) for r, i in roles.items()} for t, roles in data.items() if isinstance(roles, dict)}


def write_active(active: dict[str, dict[str, str]], path: Path | None = None) -> None:
    """Replace the activation map atomically (an empty role table is dropped)."""
    path = path or active_file_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    clean = {t: dict(sorted(r.items())) for t, r in sorted(active.items()) if r}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as fh:
        fh.write(json.dumps(clean, indent=2) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def set_active(task: str, role: str, card_id: str | None, path: Path | None = None) -> None:
    """Use *card_id* for *task*'s *role*; None: back to the default card."""
    active = read_active(path)
    roles = dict(active.get(task, {}))
    if card_id is None:
        roles.pop(role, None)
    else:
        roles[role] = card_id
    active[task] = roles
    write_active(active, path)
