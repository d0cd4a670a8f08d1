"""What one analysis of one frame produces: the boundary between the engine and every view.

Why a typed result: the GUI panels, `medkd analyze`, the PDF/JSON/DICOM exports and the tests
all read the same object, so a figure can never differ between the window and the report.
Arrays stay out of ``to_dict`` (the JSON export), which holds numbers and names only.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..models.geometry import PlacedMap

#: A calibrated top probability below this is labelled uncertain. Since the probabilities are
#: calibrated (trust.calibration), a top probability p means about p of such predictions were right
#: on validation images: below 0.6, fewer than 6 in 10.
UNCERTAIN_BELOW = 0.6

#: What the window's banner, the PDF and the JSON say when a model flags its input as out of distribution.
OOD_SENTENCE = ("This image does not look like the images this model was trained on; its prediction is "
                "not meaningful.")


@dataclass
class OodResult:
    """How far to trust that the input is the kind of image the model was trained on.

    Two signals: the study-level *gate* (a DICOM of another modality or body part, a colour image
    for a grey model: ``inference.pairing.mismatch_warning``), which flags whatever the score says,
    and the feature-space *score* (``trust.ood``; higher: less like the training images) against its
    threshold, set on the task's validation images so that at least 95 % of in-distribution images
    pass (with 90 % confidence: ``trust.ood.pass_threshold``).
    """

    score: float | None  # None: the model's card carries no OOD statistics
    threshold: float | None
    gate: str | None = None  # the study-level reason, when the study itself is not the model's kind

    @property
    def above_threshold(self) -> bool:
        return self.score is not None and self.threshold is not None and self.score > self.threshold

    @property
    def in_distribution(self) -> bool:
        return self.gate is None and not self.above_threshold

    @property
    def reason(self) -> str | None:
        """Why the input was flagged, in a clinician's words; None when it was not."""
        if self.gate:
            return self.gate
        if self.above_threshold:
            return f"{OOD_SENTENCE} Its OOD score {self.score:.1f} is above the threshold {self.threshold:.1f}."
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"score": None if self.score is None else float(self.score),
                "threshold": None if self.threshold is None else float(self.threshold),
                "in_distribution": self.in_distribution,
                **({"reason": self.reason} if self.reason else {})}


@dataclass
class ModelResult:
    role: str  # "teacher" | "student"
    card_id: str
    name: str
    classes: list[str]
    probabilities: np.ndarray  # (n_classes,), sums to 1 (for tiled images: mean over tiles)
    latency_ms: float  # forward pass, batch 1 (summed over tiles)
    #: method name -> heatmap at the model's resolution with the box of the analysed image it covers
    heatmaps: dict[str, PlacedMap] = field(default_factory=dict)
    #: method name -> seconds the explanation took (MET)
    explain_seconds: dict[str, float] = field(default_factory=dict)
    #: method name -> its per-stage maps, for multi-layer methods (feature maps, DFS-Ex's texture/shape)
    stages: dict[str, list[tuple[str, PlacedMap]]] = field(default_factory=dict)
    #: method name -> why it was not run for this model (e.g. attention on a CNN)
    skipped: dict[str, str] = field(default_factory=dict)
    #: method name -> {"deletion_auc", "insertion_auc"} when faithfulness was asked for
    faithfulness: dict[str, dict[str, float]] = field(default_factory=dict)
    #: 002 layer-by-layer strip: (stage name, average feature map in [0, 1]) shallow -> deep
    feature_maps: list[tuple[str, np.ndarray]] = field(default_factory=list)
    test_accuracy: float | None = None  # from the model card
    #: softmax(logits) before the card's temperature; ``probabilities`` is softmax(logits / T)
    #: (trust.calibration, Guo et al. 2017), which the window and the reports show. Kept for the JSON
    #: so an auditor can see what calibration changed. None: not computed (a hand-made result).
    probabilities_uncalibrated: np.ndarray | None = None
    calibrated: bool = False  # the card holds a fitted temperature
    temperature: float = 1.0
    ood: OodResult | None = None  # None: not computed (a hand-made result)
    at_chance: bool = False  # the card's test-accuracy CI reaches chance (ModelCard.at_chance)

    @property
    def predicted_index(self) -> int:
        return int(np.argmax(self.probabilities))

    @property
    def predicted(self) -> str:
        return self.classes[self.predicted_index]

    @property
    def uncertain(self) -> bool:
        return float(self.probabilities[self.predicted_index]) < UNCERTAIN_BELOW

    @property
    def out_of_distribution(self) -> bool:
        return self.ood is not None and not self.ood.in_distribution

    def to_dict(self) -> dict[str, Any]:
        return {
            "card": self.card_id,
            "name": self.name,
            "probabilities": {c: float(p) for c, p in zip(self.classes, self.probabilities)},
            "predicted": self.predicted,
            "calibrated": self.calibrated,
            "temperature": self.temperature,
            **({"probabilities_uncalibrated": dict(zip(self.classes, map(float, self.probabilities_uncalibrated)))}
               if self.probabilities_uncalibrated is not None else {}),
            **({"ood": self.ood.to_dict()} if self.ood is not None else {}),
            "at_chance": self.at_chance,
            "uncertain": self.uncertain,
            "latency_ms": round(self.latency_ms, 2),
            "explain_ms": {m: round(s * 1000, 1) for m, s in self.explain_seconds.items()},
            "test_accuracy": self.test_accuracy,
            **({"skipped": dict(self.skipped)} if self.skipped else {}),
            **({"faithfulness": {m: {k: round(v, 4) for k, v in f.items()} for m, f in self.faithfulness.items()}}
               if self.faithfulness else {}),
        }


@dataclass
class HeatmapAgreement:
    """Teacher vs student heatmap of one method (``explain.metrics.map_agreement``'s grid)."""

    pearson: float
    ssim: float
    iou_top20: float

    def to_dict(self) -> dict[str, float | None]:
        """NaN (a flat map has no correlation) becomes None, so the JSON stays valid; full precision,
        so that every command that reports the figure reports the same number."""
        return {k: None if v != v else float(v) for k, v in
                (("pearson", self.pearson), ("ssim", self.ssim), ("iou_top20", self.iou_top20))}


@dataclass
class Analysis:
    task: str
    image: np.ndarray  # the analysed image in [0, 1] as displayed (gray (H, W) or RGB (H, W, 3)); fMRI: the glass brain
    frame_index: tuple[int, int]  # (volume, slice) of the study
    teacher: ModelResult
    student: ModelResult
    target: str | None  # class explained; None = each model's own prediction
    agreement: dict[str, HeatmapAgreement] = field(default_factory=dict)  # per method
    timings_ms: dict[str, float] = field(default_factory=dict)  # step -> ms (preprocess, teacher, student, each method)
    device: str = "cpu"
    warnings: list[str] = field(default_factory=list)
    n_tiles: int = 1

    def result(self, role: str) -> ModelResult:
        return self.teacher if role == "teacher" else self.student

    @property
    def same_class(self) -> bool:
        return self.teacher.predicted == self.student.predicted

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "frame_index": list(self.frame_index),
            "target": self.target,
            "teacher": self.teacher.to_dict(),
            "student": self.student.to_dict(),
            "same_class": self.same_class,
            "agreement": {m: a.to_dict() for m, a in self.agreement.items()},
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
            "device": self.device,
            "warnings": list(self.warnings),
            "n_tiles": self.n_tiles,
        }
