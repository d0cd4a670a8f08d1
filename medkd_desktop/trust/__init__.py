"""Trust: what tells a clinician how far to believe a probability (calibration, for now).

Sits beside ``distill`` (neither imports the other): it may use studies, models and explain.
"""
from .calibration import apply_temperature, fit_temperature, softmax

__all__ = ["apply_temperature", "fit_temperature", "softmax"]
