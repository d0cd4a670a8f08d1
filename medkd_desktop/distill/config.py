"""Training configuration: every hyper-parameter lives in a TOML file, flags override.

Why TOML files under ``configs/``: a bundled model's card records the exact config and
command, so anyone can re-run it and get the same weights (same seed, same data).
"""
from __future__ import annotations

import hashlib
import json
import math
import tomllib
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..models.preprocess import InputSpec
from .augment import check_augment_params

#: Field metadata of keys added after models were trained with this config format: at their
#: default they are left out of ``digest()``, so a run started before they existed resumes.
LATER = {"digest_if_default": False}


@dataclass
class TrainConfig:
    task: str
    role: str  # teacher | student | baseline
    classes: list[str]
    manifest: str  # relative to the shared data folder, or absolute
    arch: str
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    input: InputSpec = field(default_factory=InputSpec)
    loss: str = "ce"
    loss_params: dict[str, Any] = field(default_factory=dict)
    teacher: str = ""  # teacher card path (relative to the repo) for distilled students
    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_epochs: int = 1
    label_smoothing: float = 0.0  # never read by the trainer: must stay 0 (ce takes loss_params.label_smoothing)
    balance: str = "none"  # none | sqrt | full: class-balanced sampling of the train split
    augment: dict[str, Any] = field(default_factory=lambda: {"hflip": True, "scale": [0.7, 1.0], "rotate": 10.0,
                                                              "brightness": 0.1, "contrast": 0.1})
    seed: int = 0
    precision: str = "bf16"  # bf16 | fp32 (autocast on CPU and CUDA)
    channels_last: bool = True
    select: str = "macro_f1"  # validation metric that picks the epoch kept
    out_dir: str = ""  # where weights + card go (default trained_models/<task>; see trainer.default_out_dir)
    file_stem: str = ""  # default: the role
    provenance: str = ""
    caveats: list[str] = field(default_factory=list)
    license: str = ""
    #: named test subsets reported separately, e.g. {"adult_only": {"exclude_source_contains": "lecuong1502"}}
    subsets: dict[str, dict[str, str]] = field(default_factory=dict)
    #: models.card.TaskInfo fields (what studies the task's models read); students and baselines
    #: may leave it out and inherit the installed teacher card's
    task_info: dict[str, Any] = field(default_factory=dict)
    limit: int = 0  # use at most this many images per split (quick runs and tests); 0 = all
    # -- training levers (issue #20); each off by default, so older configs train as before --
    #: EMA of the student's weights per optimiser step (0 = off, e.g. 0.999); validation, the
    #: selected epoch and the written weights are then the averaged ones (distill.averaging)
    ema_decay: float = field(default=0.0, metadata=LATER)
    #: SWA: average the weights at the end of each of the last this-many epochs (0 = off)
    swa_epochs: int = field(default=0, metadata=LATER)
    #: teacher test-time augmentation for the soft targets: "none" | "hflip" (distill.teachers)
    teacher_tta: str = field(default="none", metadata=LATER)
    #: more teacher cards whose logits are averaged with `teacher`'s for the soft targets
    teacher_ensemble: list[str] = field(default_factory=list, metadata=LATER)
    #: attention transfer on top of the loss (distill.attention): weight (0 = off), stage index
    at_weight: float = field(default=0.0, metadata=LATER)
    at_stage: int = field(default=-1, metadata=LATER)
    #: a model card whose verified weights the student starts from (fine-tuning, e.g. the bundled
    #: student in `medkd retrain`); empty: random initialisation, as every bundled model had
    init_weights: str = field(default="", metadata=LATER)

    def __post_init__(self) -> None:
        check_augment_params(self.augment)
        if self.label_smoothing:
            raise ValueError("label_smoothing is read by the ce loss only: set loss_params = {label_smoothing = ...} "
                             "with loss = \"ce\" (the top-level key is kept for old cards and must stay 0)")
        if not 0.0 <= float(self.ema_decay) < 1.0:
            raise ValueError(f"ema_decay must lie in [0, 1), got {self.ema_decay}")
        if not 0 <= int(self.swa_epochs) <= int(self.epochs):
            raise ValueError(f"swa_epochs must lie in [0, epochs={self.epochs}], got {self.swa_epochs}")
        if self.ema_decay and self.swa_epochs:
            raise ValueError("choose one weight average: ema_decay or swa_epochs, not both")
        if self.teacher_tta not in ("none", "hflip"):
            raise ValueError(f"teacher_tta must be 'none' or 'hflip', not {self.teacher_tta!r}")
        if self.teacher_tta == "hflip" and not self.augment.get("hflip"):
            raise ValueError("teacher_tta = 'hflip' shows the teacher mirrored images, but this task's "
                             "augment.hflip is false (laterality matters): leave teacher_tta at 'none'")
        if not (float(self.at_weight) >= 0.0 and math.isfinite(float(self.at_weight))):
            raise ValueError(f"at_weight must be >= 0, got {self.at_weight}")
        if (self.teacher_ensemble or self.teacher_tta != "none") and not self.teacher:
            raise ValueError("teacher_ensemble and teacher_tta refine a teacher's soft targets: set `teacher` too")

    @classmethod
    def from_toml(cls, path: Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
        with open(path, "rb") as fh:
            d = tomllib.load(fh)
        for key, value in (overrides or {}).items():
            table, dot, sub = key.partition(".")
            if dot:  # `augment.trivial=true` changes one key of a table and keeps the others
                if not isinstance(d.get(table, {}), dict):
                    raise ValueError(f"{table} is not a table, so {key} cannot be set")
                d[table] = {**d.get(table, {}), sub: value}
            else:
                d[key] = value
        return cls.from_dict(d)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        d = dict(d)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown config keys: {', '.join(unknown)}")
        if isinstance(d.get("input"), dict):
            d["input"] = InputSpec.from_dict(d["input"])
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["input"] = self.input.to_dict()
        return d

    def digest(self) -> str:
        """Identifies a run for resuming: a checkpoint of another config is never resumed.

        Keys marked ``LATER`` count only when set away from their default: a config that uses
        none of them hashes as it did before they existed, so its checkpoint still resumes.
        """
        d = self.to_dict()
        # The gate's accepted body parts say which studies the app sends to the model, not how it is
        # trained: adding them to a config does not make it another run.
        d["task_info"] = {k: v for k, v in (d.get("task_info") or {}).items() if k != "body_parts"}
        for f in fields(self):
            if f.metadata.get("digest_if_default", True):
                continue
            default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
            if d[f.name] == default:
                del d[f.name]
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def parse_override(text: str) -> tuple[str, Any]:
    """``key=value`` with a TOML value (``epochs=3``, ``arch_kwargs={drop_rate=0.1}``, ``arch="timm:resnet18"``);
    a bare word that is not valid TOML is taken as a string."""
    key, sep, value = text.partition("=")
    if not sep:
        raise ValueError(f"override must be key=value, got {text!r}")
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value
    return key.strip(), parsed
