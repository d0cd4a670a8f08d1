"""What a model returns during training, so that every distillation loss can read it.

Why a dataclass and not a tuple: the four losses need different parts (logits only for
``kd_kl`` / ``fbce_mse``, an early and a late feature map for ``dfkd``, every stage plus the
distillation-token head for ``hdkd``). Models fill what they have; losses say what they need.
At inference every model's ``forward(x)`` returns plain logits, so explainers and the engine
treat them alike.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor


@dataclass
class ModelOutput:
    #: (B, n_classes) logits used for the prediction. For the HDKD hybrid student this is the
    #: average of the class-token and distillation-token heads (004 §3.4), as at inference.
    logits: Tensor
    #: Stage outputs, shallow to deep, each (B, C_i, H_i, W_i). Token sequences are reshaped
    #: back to maps by the model, so losses and explainers only see spatial maps.
    features: list[Tensor] = field(default_factory=list)
    #: HDKD student only: the class-token head and the distillation-token head, separately.
    cls_logits: Tensor | None = None
    dist_logits: Tensor | None = None
