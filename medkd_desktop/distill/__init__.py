"""Distillation: manifest datasets, the papers' losses, the trainer and evaluation."""
