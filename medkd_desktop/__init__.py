"""MedKD Desktop."""
