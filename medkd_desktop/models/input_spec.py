"""What a model reads: input size, channels, normalisation, crop, and for fMRI the map it renders.

Why a module of its own, without torch: every model card carries one, and the review window
reads the cards while it starts; torch loads with the first model, on the worker thread.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

PREPROCESSING_ID = "medkd.display01.v1"


@dataclass(frozen=True)
class InputSpec:
    size: int = 224
    channels: int = 3  # 1: gray (luminance), 3: RGB (gray is replicated)
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    std: tuple[float, ...] = (0.25, 0.25, 0.25)
    #: "center_square": crop the largest centred square, then resize (keeps aspect; HAM10000's
    #: full frames and centre crops then look alike). "stretch": resize the whole frame.
    crop: str = "center_square"
    preprocessing: str = PREPROCESSING_ID
    #: fMRI cards: which summary map feeds the model ("amplitude" or "degree") and the glass-brain
    #: rendering settings (GlassBrainSettings fields) that turn it into the RGB input.
    fmri_map: str | None = None
    glass_brain: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> InputSpec:
        d = dict(d)
        d["mean"], d["std"] = tuple(d.get("mean", cls.mean)), tuple(d.get("std", cls.std))
        return cls(**d)
