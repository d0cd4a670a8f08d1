"""The explainer registry's method labels, for widgets that exist before the engine has started.

Why a wrapper: the labels live in the registry (``explain.method_label``), whose explainers import
torch; the window must appear without waiting the second that takes. The worker imports them
first, so by the time a widget asks for a label the import is free.
"""
from __future__ import annotations


def method_label(method: str) -> str:
    from ..explain import method_label as label

    return label(method)
