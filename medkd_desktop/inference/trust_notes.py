"""How far to trust each prediction, in one vocabulary for the window, the PDF and the JSON.

Why one module: "out of distribution", "no better than chance" and "uncertain" must read the same
wherever a prediction appears, and whether a prediction is withheld must be decided once.

- **Out of distribution** (``ModelResult.ood``): the study-level gate or the feature score says the
  image is not the kind the model was trained on. The prediction is then withheld by default.
- **No better than chance** (``ModelCard.at_chance``): the model's test-accuracy CI reaches the
  accuracy of always answering the most frequent class; every prediction it makes carries the label.
- **Uncertain**: the calibrated top probability is below ``analysis.UNCERTAIN_BELOW``.
"""
from __future__ import annotations

from dataclasses import dataclass

from .analysis import OOD_SENTENCE, UNCERTAIN_BELOW, Analysis


@dataclass(frozen=True)
class TrustNote:
    kind: str  # "ood" | "chance" | "uncertain"
    roles: tuple[str, ...]  # ("teacher",), ("student",) or both
    text: str


def withheld(analysis: Analysis) -> bool:
    """Predictions are hidden until the user asks to see them: a model flagged the input as OOD."""
    return any(r.out_of_distribution for r in (analysis.teacher, analysis.student))


def _who(roles: tuple[str, ...]) -> str:
    return "Teacher and student" if len(roles) == 2 else roles[0].capitalize()


def notes(analysis: Analysis) -> list[TrustNote]:
    """The labels of both predictions, most serious first; a label both models share is said once."""
    results = (analysis.teacher, analysis.student)
    out: list[TrustNote] = []
    ood = tuple(r.role for r in results if r.out_of_distribution)
    if ood:
        gate = next((r.ood.gate for r in results if r.ood is not None and r.ood.gate), None)
        scores = "; ".join(f"{r.role} score {r.ood.score:.1f} (threshold {r.ood.threshold:.1f})" for r in results
                           if r.ood is not None and r.ood.score is not None and r.ood.threshold is not None)
        why = gate or f"{_who(ood)} flagged it"
        out.append(TrustNote("ood", ood, f"{OOD_SENTENCE} {why}{'.' if not why.endswith('.') else ''}"
                                         f"{f' OOD {scores}.' if scores else ''}"))
    chance = tuple(r.role for r in results if r.at_chance)
    if chance:
        out.append(TrustNote("chance", chance, f"{_who(chance)}: no better than chance on its test set (the "
                                               "accuracy's 95 % CI includes always answering the commonest class)."))
    unsure = tuple(r.role for r in results if r.uncertain)
    if unsure:
        probs = ", ".join(f"{r.role} {100 * float(r.probabilities[r.predicted_index]):.0f} %"
                          for r in results if r.role in unsure)
        out.append(TrustNote("uncertain", unsure, f"{_who(unsure)}: uncertain (calibrated top probability {probs}, "
                                                  f"below {UNCERTAIN_BELOW:.0%})."))
    return out

