"""Which model pair fits a study: one rule, read from the model cards, for the window and the CLI.

Why one rule: when the window and ``medkd analyze`` chose differently, the same grey JPEG got a
model pair in one and an error in the other. Why from the cards (``ModelCard.task_info``): a
student distilled for a new task lands in the user's model folder as a card, and must be
proposed and described with no code change.

The rule, in order:

1. the user's choice (``--task``, the task menu) is always used, with a mismatch warning when
   the study is not the kind of image the models were trained on;
2. else the installed pair whose cards claim the study's modality hint (CR, MR, histology...);
3. else the current pair if it fits the study, or the one installed pair that does (colour or
   grey, study kind), with a note that nothing in the study named it;
4. else nothing: the study is shown without analysis and the user picks a task. Two pairs that
   fit equally (a grey JPEG fits the chest and the brain models) are not guessed between,
   because a chest model run silently on a brain slice gives confident nonsense.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..models.card import TaskInfo
from ..models.registry import ModelRegistry
from ..models.weights import ModelLoadError
from ..studies.study import Study, modality_words

__all__ = ["Proposal", "describe", "mismatch_warning", "propose", "task_info"]


@dataclass(frozen=True)
class Proposal:
    """The pair to use (None: none fits) and what to tell the user about it."""

    task: str | None
    warning: str | None = None  # the chosen models were not trained on studies like this one
    note: str | None = None  # why this pair (or none) was picked without the study naming it

    @property
    def messages(self) -> list[str]:
        return [m for m in (self.note, self.warning) if m]


def task_info(registry: ModelRegistry, task: str) -> TaskInfo:
    """The task's fields from its teacher card (any card of the task if no teacher is installed)."""
    try:
        return registry.card(task, "teacher").task_info
    except ModelLoadError:
        cards = [c for c in registry.cards.values() if c.task == task]
        return cards[-1].task_info if cards else TaskInfo()


def describe(registry: ModelRegistry, task: str) -> str:
    """One line for the task menu's tooltip."""
    info = task_info(registry, task)
    parts = [info.display_name or task]
    if info.trained_on:
        parts.append(f"trained on {info.trained_on}")
    return " — ".join(parts)


def _claimed(registry: ModelRegistry, modality: str) -> list[str]:
    return sorted({c.task for c in registry.cards.values() if modality in c.task_info.modalities})


def mismatch_warning(study: Study, task: str, registry: ModelRegistry) -> str | None:
    """A sentence when *task*'s models were not trained on studies like this one, else None.

    Why a warning and not a refusal: the modality hint can be missing or wrong (a radiograph
    saved as JPEG reads as a plain grey image), so the user may override; but such a choice
    must never run silently.
    """
    info = task_info(registry, task)
    part = study.metadata.body_part.strip().upper()
    if info.body_parts and part and part not in info.body_parts:
        return (f"This study is of the {part.lower()}, but the {task} models were trained on "
                f"{info.trained_on or 'other images'}; their output means nothing for it.")
    if study.modality in info.modalities:
        return None
    trained_on = info.trained_on or f"the {task} data"
    if _claimed(registry, study.modality):
        return (f"This is a {modality_words(study.modality)} study, but the {task} models were trained on "
                f"{trained_on}; their output means nothing for it.")
    if info.study_kinds and study.kind.value not in info.study_kinds:
        return f"The {task} models read {trained_on}, which this {study.kind.value} study does not hold."
    if info.colour is True and not study.is_rgb:
        return f"This is a grey-scale image, but the {task} models were trained on colour {trained_on}."
    if info.colour is False and study.is_rgb:
        return f"This is a colour image, but the {task} models were trained on grey-scale {trained_on}."
    if study.modality not in ("OT", ""):
        return (f"MedKD has no model for {modality_words(study.modality)} studies; the {task} models were "
                f"trained on {trained_on}.")
    return None


def propose(study: Study, registry: ModelRegistry, chosen: str | None = None,
            current: str | None = None) -> Proposal:
    """The pair for *study* by the rule above; *current* is the pair the window shows now."""
    available = registry.paired_tasks()
    listing = ", ".join(available) or "none installed"
    if chosen is not None:
        if chosen not in available:
            return Proposal(None, note=f"No models are installed for task {chosen!r} (installed: {listing}).")
        return Proposal(chosen, warning=mismatch_warning(study, chosen, registry))
    if not available:
        return Proposal(None, note="No model pair is installed, so the study is shown without analysis.")
    claiming = [t for t in available if study.modality in task_info(registry, t).modalities]
    if claiming:
        return Proposal(current if current in claiming else claiming[0])
    what = modality_words(study.modality if study.modality not in ("OT", "") or not study.is_rgb else "photo")
    unnamed = f"Nothing in this {what} study says which models fit it."
    if current in available and mismatch_warning(study, current, registry) is None:
        return Proposal(current, note=f"{unnamed} The {current} models are shown; check that they fit.")
    fitting = [t for t in available if mismatch_warning(study, t, registry) is None]
    if len(fitting) == 1:
        return Proposal(fitting[0], note=f"{unnamed} The {fitting[0]} models are shown; check that they fit.")
    if fitting:
        return Proposal(None, note=f"{unnamed} Choose a task ({', '.join(fitting)} fit it).")
    return Proposal(None, note=f"No installed model is meant for a {what} study; choose a task ({listing}).")
