"""What every export shares: the disclaimer, the identifier-free study summary, safe writing.

Why here: the PDF, PNG, JSON and DICOM exports must carry the same disclaimer and must leave
patient identifiers out by the same rule, so the rule lives in one place. The window shows the
same disclaimer, so it imports these constants too (the core never imports the window). Method
names a reader sees come from the explainer registry (``explain.method_label``), not from here.
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..studies.study import Study
from .errors import ReportError

DISCLAIMER = "Research use only — not for diagnosis"
DISCLAIMER_LONG = (
    "Research use only — not for diagnosis. MedKD Desktop is not a medical device; its models were "
    "trained on public research data and their outputs must not inform diagnosis or treatment."
)

def study_summary(study: Study) -> dict[str, Any]:
    """``Study.summary()`` without the file name: names of exported files often carry the patient's."""
    summary = study.summary()
    summary.pop("source", None)
    return summary


def json_safe(value: Any) -> Any:
    """NaN / infinity (an undefined agreement of a flat heatmap) -> None, so the JSON stays valid."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def fmt(value: float | None, spec: str = ".2f") -> str:
    """A figure for reports; "n/a" where it is undefined."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return format(value, spec)


def write_file(path: str | os.PathLike[str], writer: Callable[[Path], None]) -> Path:
    """Write through a temporary file in the same folder, then rename: no half-written report.

    Raises :class:`ReportError` with a plain sentence when the folder is missing or not writable.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise ReportError(f"The folder {path.parent} does not exist.")
    tmp = path.with_name(f".{path.name}.part")
    try:
        writer(tmp)
        os.replace(tmp, path)
    except ReportError:
        tmp.unlink(missing_ok=True)
        raise
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ReportError(f"{path.name} could not be written ({exc.strerror or 'write error'}).",
                          detail=f"{type(exc).__name__}: {exc}") from None
    return path
