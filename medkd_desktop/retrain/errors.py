"""The one error type of `medkd retrain` and `medkd models`: bad input, said in one sentence."""
from __future__ import annotations

from ..errors import MedKDError


class RetrainError(MedKDError):
    """The data, the settings or the model folder do not allow the run; the message says why
    and what to change (the CLI prints it as its one ``error:`` line and exits 2)."""

    message = "The retraining could not start."
