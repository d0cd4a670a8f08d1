"""Weights on disk: safetensors only, checked against the card's sha256 before loading.

Why: a model file on a hospital PC is an attack surface and a source of silent errors.
safetensors cannot execute code when loaded (pickle can), and the hash in the card catches
a truncated copy or a swapped file before a wrong model shows a confident prediction.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch loads with the first model, not with the cards (the window reads cards at start)
    import torch

from ..errors import MedKDError


class ModelLoadError(MedKDError):
    """A model could not be loaded; the message names the model and says why."""

    message = "The model could not be loaded."


class ModelIntegrityError(ModelLoadError):
    """The weights file is missing or does not match the hash in its model card."""


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def save_weights(model: torch.nn.Module, path: Path, dtype: torch.dtype | None = None) -> str:
    """Write the model's state dict as safetensors (contiguous, CPU) and return its sha256.

    ``dtype`` (e.g. float16) stores floating tensors at that precision: half the size, so a
    DenseNet-121 fits the 25 MB budget per bundled model; loading casts back to float32.
    """
    from safetensors.torch import save_file

    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    save_file(state, str(path))
    return sha256_file(path)


def load_verified_state(path: Path, sha256: str, model_id: str) -> dict[str, torch.Tensor]:
    """Return the state dict at *path* after checking its hash; raise ModelIntegrityError otherwise."""
    if not path.is_file():
        raise ModelIntegrityError(f"Model {model_id}: weights file {path.name} is missing.")
    actual = sha256_file(path)
    if actual != sha256:
        raise ModelIntegrityError(
            f"Model {model_id}: weights file {path.name} does not match its model card "
            "(it was changed or damaged); it will not be loaded."
        )
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own errors for malformed files
        raise ModelIntegrityError(f"Model {model_id}: weights file {path.name} is damaged (not valid safetensors).",
                                  detail=f"{type(exc).__name__}: {exc}") from None
