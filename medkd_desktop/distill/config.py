"""Training configuration: every hyper-parameter lives in a TOML file, flags override.

Why TOML files under ``configs/``: a bundled model's card records the exact config and
command, so anyone can re-run it and get the same weights (same seed, same data).
"""
from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..models.preprocess import InputSpec


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
    label_smoothing: float = 0.0
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

    @classmethod
    def from_toml(cls, path: Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
        with open(path, "rb") as fh:
            d = tomllib.load(fh)
        d.update(overrides or {})
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
        """Identifies a run for resuming: a checkpoint of another config is never resumed."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


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
