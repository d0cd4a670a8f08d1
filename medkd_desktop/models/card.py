"""Model cards: the JSON beside each weights file that says what a model is and how good it is.

Why: the app may only show figures the project measured, and a clinician (or auditor) must
be able to see what a model was trained on, how, how well, and what it must not be used
for. The card is also the contract for loading: architecture + kwargs + input spec + the
weights' sha256.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .input_spec import InputSpec

ROLES = ("teacher", "student", "baseline")
INTENDED_USE = (
    "Research use only. Not a medical device; not for diagnosis or treatment decisions. "
    "Shows how a compact distilled model compares with its teacher on public research data."
)


@dataclass(frozen=True)
class TaskInfo:
    """What a task's models read, in the card so that pairing needs no code per task.

    Why in every card: a student distilled for a new task in the user's model folder must be
    proposed for the right studies and described in the window with no code change. The
    pairing rule (``inference.pairing``) reads these fields from the task's teacher card.
    """

    display_name: str = ""  # e.g. "Chest X-ray: COVID-19 / pneumonia / normal"
    trained_on: str = ""  # a clinician's words for mismatch warnings, e.g. "chest radiographs"
    modalities: tuple[str, ...] = ()  # study modality hints the task is proposed for (studies.MODALITIES)
    study_kinds: tuple[str, ...] = ()  # StudyKind values its models can read; empty: any
    colour: bool | None = None  # True: colour images, False: grey-scale, None: either (e.g. rendered fMRI)
    #: DICOM BodyPartExamined values the task accepts (e.g. CHEST); empty: any. A DICOM naming another
    #: body part is flagged as out of distribution before any score is read.
    body_parts: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["modalities"], d["study_kinds"], d["body_parts"] = map(list, (self.modalities, self.study_kinds,
                                                                          self.body_parts))
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> TaskInfo:
        d = dict(d or {})
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown task_info keys: {', '.join(unknown)}")
        for key in ("modalities", "study_kinds", "body_parts"):
            d[key] = tuple(d.get(key, ()))
        return cls(**d)


def majority_share(metrics: Mapping[str, Any]) -> float | None:
    """Share of the test set in its most common class (from the confusion matrix), or None: the
    accuracy of always giving the same answer, which is what "chance" means for a card."""
    confusion = metrics.get("confusion")
    matrix = confusion.get("matrix") if isinstance(confusion, dict) else None
    try:
        totals = [sum(int(v) for v in row) for row in matrix or []]
    except (TypeError, ValueError):
        return None
    n = sum(totals)
    return max(totals) / n if n > 0 else None


def at_chance(metrics: Mapping[str, Any]) -> bool:
    """The accuracy's 95 % CI (or the accuracy, without one) reaches :func:`majority_share`."""
    share = majority_share(metrics)
    acc = metrics.get("accuracy")
    if share is None or not isinstance(acc, (int, float)):
        return False
    ci = (metrics.get("ci") or {}).get("accuracy")
    low = ci[0] if isinstance(ci, (list, tuple)) and len(ci) == 2 and isinstance(ci[0], (int, float)) else acc
    return low <= share


@dataclass
class ModelCard:
    id: str  # e.g. "cxr-covid/student"
    task: str  # e.g. "cxr-covid"
    role: str  # teacher | student | baseline
    architecture: str  # registry name: "timm:resnet18", "hdkd_student", "cnn5"
    arch_kwargs: dict[str, Any]
    classes: list[str]
    input: InputSpec
    weights_file: str  # relative to the card's folder
    sha256: str
    name: str = ""  # human-readable, e.g. "DenseNet-121 teacher"
    parameters: int = 0
    flops: int = 0  # multiply-adds x2 for one input
    cpu_latency_ms: float | None = None  # batch 1, median; see `medkd bench inference`
    training: dict[str, Any] = field(default_factory=dict)  # method, loss params, epochs, seed, manifest sha256, command, config
    metrics: dict[str, Any] = field(default_factory=dict)  # test-split metrics (see distill.metrics)
    #: Temperature scaling fitted on the val split (trust.calibration, Guo et al. 2017):
    #: {"temperature", "fitted_on", "n", "nll_before", "nll_after", "ece_before", "ece_after"}.
    #: Empty: uncalibrated (T = 1). Outside the sha256, which covers the weights only.
    calibration: dict[str, Any] = field(default_factory=dict)
    #: Out-of-distribution score (trust.ood), fitted on train with its threshold on val:
    #: {"file", "sha256", "score", "stages", "threshold", ...}. The statistics file lies beside the
    #: weights and is refused when its sha256 differs. Empty: the model carries no OOD score.
    ood: dict[str, Any] = field(default_factory=dict)
    provenance: str = ""
    caveats: list[str] = field(default_factory=list)
    license: str = ""
    intended_use: str = INTENDED_USE
    #: Explainer target layers by role ("gradcam": module name, ...). Filled from the architecture.
    target_layers: dict[str, Any] = field(default_factory=dict)
    task_info: TaskInfo = field(default_factory=TaskInfo)
    path: Path | None = field(default=None, compare=False, repr=False)  # where the card was read from

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {self.role!r}")

    @property
    def weights_path(self) -> Path:
        if self.path is None:
            raise ValueError(f"card {self.id} was not read from disk")
        return self.path.parent / self.weights_file

    @property
    def test_accuracy(self) -> float | None:
        return self.metrics.get("accuracy")

    @property
    def temperature(self) -> float:
        """The logits' divisor before the softmax: every probability shown is softmax(logits / T)."""
        t = float(self.calibration.get("temperature", 1.0))
        if not t > 0:
            raise ValueError(f"card {self.id}: calibration temperature must be > 0, got {t}")
        return t

    @property
    def at_chance(self) -> bool:
        """The test accuracy's 95 % CI reaches chance: the model is not shown to beat a constant answer."""
        return at_chance(self.metrics or {})

    @property
    def ood_path(self) -> Path | None:
        if not self.ood or self.path is None:
            return None
        return self.path.parent / self.ood["file"]

    @property
    def calibrated(self) -> bool:
        return "temperature" in self.calibration

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("path")
        d["input"] = self.input.to_dict()
        d["task_info"] = self.task_info.to_dict()
        return d

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n")
        self.path = path

    @classmethod
    def load(cls, path: Path) -> ModelCard:
        d = json.loads(Path(path).read_text())
        d["input"] = InputSpec.from_dict(d["input"])
        d["task_info"] = TaskInfo.from_dict(d.get("task_info"))
        known = cls.__dataclass_fields__.keys()
        card = cls(**{k: v for k, v in d.items() if k in known and k != "path"})
        card.path = Path(path)
        return card
