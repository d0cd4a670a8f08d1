"""Every export of one analysis into a folder, each on its own: one that fails sinks no other.

Why: ``medkd analyze`` wrote the PNG and the PDF, then the optional DICOM Secondary Capture
failed and the command exited without the JSON, although the analysis itself was fine. Here
each file is attempted independently; a failure is recorded as one sentence for the user and
the others are still written (each atomically, so nothing half-written is left). The JSON is
written last and lists the files written and the exports that failed, so a script reading it
learns what happened.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..explain.overlay import DEFAULT_STYLE, OverlayStyle
from ..inference.analysis import Analysis
from ..models.card import ModelCard
from ..models.registry import ModelPair
from ..studies.study import Study
from .dicom_export import DICOM_KINDS, export_dicom_sc
from .errors import ReportError
from .json_export import export_json
from .pdf_export import export_pdf
from .png_export import export_png

log = logging.getLogger(__name__)

PDF_NAME = "report.pdf"
JSON_NAME = "analysis.json"


@dataclass
class ExportResult:
    """``files``: kind ("png", "pdf", "dicom", "json") -> path written; ``errors``: kind -> why not."""

    files: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


def file_stem(method: str) -> str:
    """The method's part of an export's file name ("gradcam++" -> "gradcampp")."""
    return method.replace("+", "p")


def _attempt(result: ExportResult, kind: str, write: Callable[[], Path]) -> None:
    try:
        result.files[kind] = str(write())
    except ReportError as exc:
        log.info("%s export failed: %s", kind, exc.detail or type(exc).__name__)  # the caller reports it
        result.errors[kind] = str(exc)
    except OSError as exc:  # write_file turns most into ReportError; a figure or codec may still raise
        log.info("%s export failed: %s", kind, type(exc).__name__)  # the text may hold the path
        result.errors[kind] = f"The {kind.upper()} file could not be written ({exc.strerror or 'write error'})."


def export_analysis(analysis: Analysis, study: Study, pair: ModelPair | Sequence[ModelCard] | Mapping[str, ModelCard],
                    out_dir: str | os.PathLike[str], method: str, *, style: OverlayStyle = DEFAULT_STYLE,
                    pdf: bool = True, show_identifiers: bool = False) -> ExportResult:
    """Write the PNG, the PDF (unless *pdf* is False), the DICOM Secondary Capture (DICOM studies
    only) and last the JSON of *analysis* into *out_dir*, each independently of the others.

    File names: ``overlay_<method>.png``, ``report.pdf``, ``overlay_<method>.dcm``,
    ``analysis.json``. Never raises for a failed export: see ``ExportResult.errors``. The JSON
    holds ``files`` and ``errors`` as well (only its own failure is missing from it).
    """
    out = Path(out_dir)
    stem = file_stem(method)
    result = ExportResult()
    _attempt(result, "png", lambda: export_png(analysis, study, out / f"overlay_{stem}.png", method, style=style))
    if pdf:
        _attempt(result, "pdf", lambda: export_pdf(analysis, study, pair, out / PDF_NAME, method,
                                                   show_identifiers=show_identifiers, style=style))
    if study.kind in DICOM_KINDS:
        _attempt(result, "dicom", lambda: export_dicom_sc(analysis, study, out / f"overlay_{stem}.dcm", method,
                                                          style=style))
    json_path = out / JSON_NAME
    extra = {"overlay": asdict(style), "files": {**result.files, "json": str(json_path)}, "errors": dict(result.errors)}
    _attempt(result, "json", lambda: export_json(analysis, study, json_path, extra=extra))
    return result
