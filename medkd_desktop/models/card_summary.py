"""What a clinician must read about a model, from its card: one summary for the window and the report.

Why one summary: the model-card dialog and the PDF report each built their own text from the
card, and they drifted (one showed the confidence intervals, the other the training seed).
Which facts are shown, in which order and with which wording is decided here; the window turns
the rows into HTML and the report into lines of text, without choosing anything themselves.
Only figures the card holds (the project's own measurements) appear; a missing one is left out
rather than shown as a guess.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .card import INTENDED_USE, ModelCard, at_chance, majority_share

#: Test-set metrics shown, in order: card key -> label.
METRICS = {"accuracy": "Test accuracy", "macro_f1": "Test macro-F1", "auc": "Test AUC"}
SHA_PREFIX = 16
#: Rows about how the model was made and may be used; caveats are read before them.
BACKGROUND = ("Training", "Data", "Licence", "Intended use", "Card")


@dataclass(frozen=True)
class CardSummary:
    """A model card as a reader needs it: ``rows`` are (label, value) in reading order.

    ``caveats`` are kept apart so a view can list them; :meth:`pairs` gives everything,
    caveats included, as one list of (label, value).
    """

    title: str
    rows: list[tuple[str, str]] = field(default_factory=list)
    caveats: list[str] = field(default_factory=list)

    def pairs(self) -> list[tuple[str, str]]:
        """All rows, with one ("Caveat", text) row per caveat after what the model is and how
        good it is, before how it was made (training, data, licence, intended use)."""
        cut = next((i for i, (label, _) in enumerate(self.rows) if label in BACKGROUND), len(self.rows))
        return [*self.rows[:cut], *(("Caveat", c) for c in self.caveats), *self.rows[cut:]]

    def value(self, label: str) -> str | None:
        return next((v for k, v in self.rows if k == label), None)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _interval(ci: Any) -> tuple[float, float] | None:
    if isinstance(ci, (list, tuple)) and len(ci) == 2:
        lo, hi = _number(ci[0]), _number(ci[1])
        if lo is not None and hi is not None:
            return lo, hi
    return None


def _metric(value: float, ci: tuple[float, float] | None, n: Any) -> str:
    text = f"{value:.3f}"
    extra = []
    if ci is not None:
        extra.append(f"95% CI {ci[0]:.3f} to {ci[1]:.3f}")
    if isinstance(n, int) and n > 0:
        extra.append(f"n = {n}")
    return text + (f" ({', '.join(extra)})" if extra else "")


def chance_note(metrics: Mapping[str, Any]) -> str | None:
    """A warning when the accuracy's 95% CI reaches down to what always answering the most
    common class would score: such a model's predictions carry little information."""
    if not at_chance(metrics):
        return None
    return (f"Always answering the most common class would score {majority_share(metrics):.1%} on the same test "
            f"set, within this model's accuracy range: treat its predictions as near chance.")


def _agreement(a: Any) -> str | None:
    """A student card's test figures where it and its teacher agree and disagree (scripts/make_trust_doc.py)."""
    try:
        agree, dis = a["agree"], a["disagree"]
        text = (f"they agree on {agree['n']} of {a['n']} test images (student right on {agree['student_accuracy']:.1%} of "
                f"them); they disagree on {dis['n']}")
        if dis["n"]:
            text += (f" (student right on {dis['student_accuracy']:.1%}, teacher on {dis['teacher_accuracy']:.1%}): "
                     "a disagreement is worth a second look")
        return text
    except (KeyError, TypeError):
        return None


def _size(card: ModelCard) -> str:
    parts = []
    if card.parameters:
        parts.append(f"{card.parameters / 1e6:.2f} M parameters")
    if card.flops:
        parts.append(f"{card.flops / 1e9:.2f} GFLOPs")
    if card.cpu_latency_ms:
        parts.append(f"CPU latency {card.cpu_latency_ms:.1f} ms (batch 1)")
    return ", ".join(parts)


def _training(training: Mapping[str, Any]) -> str:
    parts = []
    if training.get("method"):
        parts.append(f"method {training['method']}")
    params = training.get("loss_params")
    if params not in (None, "", "{}", {}):
        parts.append(f"loss parameters {params}")
    if training.get("epochs") not in (None, ""):
        parts.append(f"{training['epochs']} epochs")
    if training.get("seed") not in (None, ""):
        parts.append(f"seed {training['seed']}")
    if training.get("teacher"):
        parts.append(f"teacher {training['teacher']}")
    return ", ".join(parts)


def _retrained(card: ModelCard, r: Mapping[str, Any]) -> str:
    """A retrained version's provenance (``medkd retrain``): its data, its start, its command, and
    how it compared with the bundled student on the site's own test split."""
    counts = r.get("counts") or {}
    split_n = ", ".join(f"{s} {sum(c.values())}" for s, c in counts.items() if isinstance(c, dict))
    parts = [f"on {r.get('images', '?')} local images ({split_n})" if split_n else "on local images",
             f"from {str(r.get('init', '')).replace('bundled:', 'the bundled ')}" if r.get("init") else "",
             f"data manifest sha256 {str(r.get('data_manifest_sha256', ''))[:SHA_PREFIX]}…"
             if r.get("data_manifest_sha256") else ""]
    diff = (r.get("comparison") or {}).get("new_minus_bundled")
    if isinstance(diff, dict) and "accuracy" in diff:
        lo, hi = diff.get("accuracy_ci", [float("nan")] * 2)
        parts.append(f"vs the bundled student on the same test images: accuracy {100 * diff['accuracy']:+.1f} points "
                     f"[{100 * lo:+.1f}, {100 * hi:+.1f}]")
    if (card.training or {}).get("command"):
        parts.append(f"command: {card.training['command']}")
    return "; ".join(p for p in parts if p)


def card_summary(card: ModelCard) -> CardSummary:
    """The facts of *card* a clinician must read, in the order to read them."""
    m = card.metrics or {}
    ci = m.get("ci") if isinstance(m.get("ci"), dict) else {}
    rows: list[tuple[str, str]] = [
        ("Model", card.name or card.id),
        ("Role", card.role.capitalize()),
        ("Task", card.task),
        ("Architecture", card.architecture),
        ("Input", f"{card.input.size} px, {card.input.channels} channel(s), crop {card.input.crop}"
         + (f", {card.input.fmri_map} map glass brain" if getattr(card.input, "fmri_map", None) else "")),
        ("Classes", ", ".join(card.classes)),
    ]
    n = m.get("n")
    shown = False
    for key, label in METRICS.items():
        value = _number(m.get(key))
        if value is not None:
            rows.append((label, _metric(value, _interval(ci.get(key)), n)))
            shown = True
    if not shown:
        rows.append(("Test metrics", "none recorded"))
    for name, sub in (m.get("subsets") or {}).items():
        if isinstance(sub, dict) and _number(sub.get("accuracy")) is not None:
            rows.append((f"Test accuracy, {str(name).replace('_', ' ')}",
                         _metric(float(sub["accuracy"]), _interval((sub.get("ci") or {}).get("accuracy")), sub.get("n"))))
    note = chance_note(m)
    if note:
        rows.append(("Near chance", note))
    agreement = _agreement(m.get("teacher_agreement"))
    if agreement:
        rows.append(("Teacher–student disagreement", agreement))
    size = _size(card)
    if size:
        rows.append(("Size", size))
    training = _training(card.training or {})
    if training:
        rows.append(("Training", training))
    if card.provenance:
        rows.append(("Data", card.provenance))
    retrain = (card.training or {}).get("retrain")
    if isinstance(retrain, dict):
        rows.append(("Retrained", _retrained(card, retrain)))
    if card.license:
        rows.append(("Licence", card.license))
    rows.append(("Intended use", card.intended_use or INTENDED_USE))
    rows.append(("Card", f"{card.id} · weights sha256 {card.sha256[:SHA_PREFIX]}…" if card.sha256 else card.id))
    return CardSummary(title=card.name or card.id, rows=rows, caveats=[str(c) for c in card.caveats])
