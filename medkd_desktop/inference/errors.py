"""Typed analysis errors: one sentence for the user in ``str()``, the library's text in ``detail``."""
from __future__ import annotations

from ..errors import MedKDError


class AnalysisError(MedKDError):
    """The analysis could not be done."""

    message = "The analysis could not be completed."


class AnalysisCancelled(AnalysisError):
    message = "The analysis was cancelled."


class IncompatibleStudyError(AnalysisError):
    """The chosen models cannot read this study (e.g. an fMRI model on a radiograph), or a bad option."""

    message = "The chosen models cannot analyse this study."


class ModelUnavailableError(AnalysisError):
    """A model of the pair is not installed, or its weights are missing or damaged."""

    message = "A model of the chosen pair could not be loaded."
