"""Model cards: the JSON beside each weights file that says what a model is and how good it is.

Why: the app may only show figures the project measured, and a clinician (or auditor) must
be able to see what a model was trained on, how, how well, and what it must not be used
for. The card is also the contract for loading: architecture + kwargs + input spec + the
weights' sha256.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .preprocess import InputSpec

ROLES = ("teacher", "student", "baseline")
INTENDED_USE = (
    "Research use only. Not a medical device; not for diagnosis or treatment decisions. "
    "Shows how a compact distilled model compares with its teacher on public research data."
)


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
    provenance: str = ""
    caveats: list[str] = field(default_factory=list)
    license: str = ""
    intended_use: str = INTENDED_USE
    #: Explainer target layers by role ("gradcam": module name, ...). Filled from the architecture.
    target_layers: dict[str, Any] = field(default_factory=dict)
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

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("path")
        d["input"] = self.input.to_dict()
        return d

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n")
        self.path = path

    @classmethod
    def load(cls, path: Path) -> ModelCard:
        d = json.loads(Path(path).read_text())
        d["input"] = InputSpec.from_dict(d["input"])
        known = cls.__dataclass_fields__.keys()
        card = cls(**{k: v for k, v in d.items() if k in known and k != "path"})
        card.path = Path(path)
        return card
