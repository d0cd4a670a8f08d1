"""The analysis as JSON: every figure the window shows, for scripts, audits and the CLI."""
from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..inference.analysis import Analysis
from ..studies.study import Study
from .common import DISCLAIMER, json_safe, study_summary, write_file

FORMAT = "medkd-analysis/1"


def analysis_json(analysis: Analysis, study: Study) -> dict[str, Any]:
    """``Analysis.to_dict()`` plus an identifier-free study summary, the disclaimer and a version tag.

    The analysis keys stay at the top level (task, teacher, student, agreement, ...) so the file
    and ``medkd analyze --json`` read the same way. NaN (undefined agreement) becomes null.
    """
    return json_safe({
        "format": FORMAT,
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "disclaimer": DISCLAIMER,
        **analysis.to_dict(),
        "study": study_summary(study),
    })


def export_json(analysis: Analysis, study: Study, path: str | os.PathLike[str], *,
                extra: Mapping[str, Any] | None = None) -> Path:
    """Write :func:`analysis_json` to *path* (UTF-8, indented); returns the path.

    *extra* adds top-level keys (``export_analysis`` records the files written and the exports
    that failed); it cannot replace the analysis' own keys.
    """
    data = analysis_json(analysis, study)
    data.update({k: json_safe(v) for k, v in (extra or {}).items() if k not in data})
    text = json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    return write_file(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
