"""List, activate and remove model versions, with an audit entry for every change.

Why here and not in ``models.versions``: the audit trail (``trust``) sits above ``models``; the
rules (what may be activated, what may be removed, what a removal rolls back to) and their
audit records belong together, for the CLI and the window alike.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..models.card import ModelCard
from ..models.registry import BUNDLED_DIR, ModelRegistry, user_models_dir
from ..models.versions import is_version, set_active
from ..trust import audit
from .errors import RetrainError


@dataclass(frozen=True)
class ModelEntry:
    id: str
    task: str
    role: str
    name: str
    source: str  # bundled | user | site (MEDKD_MODEL_DIRS)
    version: bool
    active: bool
    accuracy: float | None
    path: str

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _source(card: ModelCard) -> str:
    path = Path(card.path).resolve()
    if path.is_relative_to(Path(BUNDLED_DIR).resolve()):
        return "bundled"
    if path.is_relative_to(user_models_dir().resolve()):
        return "user"
    return "site"


def list_models(registry: ModelRegistry | None = None) -> list[ModelEntry]:
    reg = registry or ModelRegistry()
    reg.refresh()
    in_use = {}
    for task in reg.tasks():
        for role in ("teacher", "student", "baseline"):
            try:
                in_use[(task, role)] = reg.card(task, role).id
            except Exception:  # noqa: BLE001 - a task without that role
                continue
    return [ModelEntry(c.id, c.task, c.role, c.name, _source(c), is_version(c), in_use.get((c.task, c.role)) == c.id,
                       c.test_accuracy, str(c.path))
            for c in sorted(reg.cards.values(), key=lambda c: (c.task, c.role, c.id))]


def _find(reg: ModelRegistry, model_id: str) -> ModelCard:
    reg.refresh()
    card = reg.cards.get(model_id)
    if card is None:
        known = ", ".join(sorted(reg.cards)) or "none"
        raise RetrainError(f"no model {model_id!r} is installed; installed: {known}")
    return card


def activate(model_id: str, registry: ModelRegistry | None = None) -> ModelCard:
    """Make *model_id* the card its task uses for its role. Activating the default (bundled)
    card is the rollback. Returns the card now in use."""
    reg = registry or ModelRegistry()
    card = _find(reg, model_id)
    before = reg.card(card.task, card.role)
    set_active(card.task, card.role, card.id if is_version(card) else None, reg.active_file)
    reg.refresh()
    now = reg.card(card.task, card.role)
    if now.id != card.id:
        raise RetrainError(f"{model_id} is installed but another {card.role} card of {card.task} takes precedence "
                           f"({now.id}, from a folder in MEDKD_MODEL_DIRS)")
    audit.record_model_change("model-activation", card.task, card.role, now, before)
    return now


def remove(model_id: str, registry: ModelRegistry | None = None) -> ModelCard:
    """Delete a user version (card first, so no half-removed model is ever seen); if it was in
    use, its task goes back to the default card. Returns the card its task uses now."""
    reg = registry or ModelRegistry()
    card = _find(reg, model_id)
    source = _source(card)
    if source == "bundled":
        raise RetrainError(f"{model_id} is a bundled model and cannot be removed; activate another version instead")
    if source != "user" or not is_version(card):
        raise RetrainError(f"{model_id} is not a retrained version in the user model folder; remove it where it lives "
                           f"({Path(card.path).parent})")
    was_active = reg.card(card.task, card.role).id == card.id
    try:
        if was_active:
            set_active(card.task, card.role, None, reg.active_file)
        weights, stats = card.weights_path, card.ood_path
        Path(card.path).unlink()
        weights.unlink(missing_ok=True)
        if stats is not None:
            stats.unlink(missing_ok=True)
    except OSError as exc:
        raise RetrainError(f"{model_id} could not be removed ({exc.strerror})") from None
    reg.refresh()
    now = reg.card(card.task, card.role)
    audit.record_model_change("model-removal", card.task, card.role, now, card)
    return now
