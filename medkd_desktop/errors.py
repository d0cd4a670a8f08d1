"""The one base of every error the app shows a person.

Why one base: the window, the CLI and the exports all turn a failure into one sentence a
clinician can act on, and keep the library's own text for the log. A single class with
``message`` (the sentence) and ``detail`` (the log's text) lets them catch every app error the
same way, whichever layer raised it.
"""
from __future__ import annotations


class MedKDError(Exception):
    """``str()`` is one sentence for the user; ``detail`` holds the technical text for the log."""

    message = "MedKD Desktop could not complete the action."

    def __init__(self, message: str | None = None, *, detail: str = "") -> None:
        self.detail = detail
        super().__init__(message or self.message)
