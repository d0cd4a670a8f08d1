"""Batch triage: every study under a folder through one model pair, one row per study.

Why a core module (no Qt, no exports): ``medkd analyze --batch`` and, later, a window panel
both need the same three steps: find the studies, analyse each with the one engine (models
loaded once), and turn each result into a row a clinician can sort. The exports (``report``)
and the audit hooks stay with the caller, as for a single ``medkd analyze``.

Discovery (:func:`discover`) walks the folder recursively and sniffs every file's bytes, as
``open_study`` does:

* DICOM files are grouped by SeriesInstanceUID from their headers alone (``stop_before_pixels``):
  a series is one study, opened by ``open_study`` from the folder that holds all its files with
  that ``series_uid`` (a series of one file, e.g. a radiograph or a multi-frame object, is opened
  as that file). A folder ``open_study`` reads as a series is therefore one study. DICOM objects
  without an image (reports, presentation states, DICOMDIR) are not studies: counted, not analysed.
* NIfTI, PNG, JPEG and TIFF files are one study each.
* A file that cannot be read, or whose bytes are no study at all, becomes an error row (the
  batch goes on), except documents beside the images (a README, a dcm2niix JSON sidecar, a CSV
  manifest): those are counted as skipped, because their names say they never were images.
* Hidden files and folders, and the batch's own output folder, are never read.

The triage figures of a row (:class:`TriageRow`) are read from the analysis' JSON form
(``ModelResult.to_dict()``), so a field added there (``ood``) reaches the row without a change
here; a field that is absent leaves its column empty.
"""
from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..models.registry import ModelPair, ModelRegistry
from ..studies import StudyLoadError, open_study
from ..studies.errors import CorruptStudyError, TruncatedStudyError, UnsupportedStudyError
from ..studies.sniff import FileKind, sniff
from ..studies.study import Study
from .analysis import Analysis
from .engine import AnalysisError, Engine
from .session import ReviewSession

log = logging.getLogger(__name__)

#: Names that say a file is a document beside the images, not an image: when its bytes are no
#: study either, it is skipped quietly instead of failing a row (the kind itself is sniffed).
DOCUMENT_SUFFIXES = frozenset({
    ".txt", ".md", ".rst", ".json", ".csv", ".tsv", ".xml", ".html", ".htm", ".pdf", ".log", ".ini",
    ".yaml", ".yml", ".toml", ".bval", ".bvec", ".doc", ".docx", ".rtf", ".xls", ".xlsx",
})
#: Header elements discovery reads from a DICOM file (nothing that identifies a patient).
_HEADER_TAGS = ["SeriesInstanceUID", "SeriesNumber", "SOPClassUID", "SOPInstanceUID", "StudyInstanceUID",
                "Rows", "Columns"]
#: Fields of ``ModelResult.to_dict()`` a batch line keeps (``ood`` once the OOD work has added it).
RESULT_FIELDS = ("card", "name", "probabilities", "predicted", "calibrated", "temperature", "ood")


# ------------------------------------------------------------------------------ discovery


@dataclass(frozen=True)
class BatchStudy:
    """One study found under the batch folder.

    ``path`` is what ``open_study`` gets (a file, or the folder holding a series' files) and
    ``series_uid`` the series to open there; ``rel`` is its path relative to the batch folder,
    as the outputs show it. ``error`` is set when discovery already knows the file cannot be
    read (the row is an error row; nothing is opened).
    """

    path: Path
    rel: str
    kind: str  # "dicom" (a series or one file), "nifti", "image", or "unreadable"
    series_uid: str | None = field(default=None, repr=False)  # kept out of reprs (and so of logs)
    series_label: str = ""  # "series 3" when a folder holds several series, else ""
    n_files: int = 1
    error: str | None = None
    error_type: str | None = None

    @property
    def name(self) -> str:
        """A file-system-safe name for the study's own output folder (unique within one batch
        once :func:`export_names` has run)."""
        text = self.rel if self.rel != "." else "study"
        if self.series_label:
            text = f"{text}__{self.series_label}"
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in text.replace("/", "__"))
        return safe.strip("._") or "study"


@dataclass
class Discovery:
    studies: list[BatchStudy]
    #: why -> how many files were left out without being a study (documents, non-image DICOM)
    skipped: dict[str, int] = field(default_factory=dict)

    def notes(self) -> list[str]:
        return [f"{n} {why} skipped" for why, n in self.skipped.items() if n]


@dataclass
class _Series:
    files: list[Path]
    number: str


def _rel(path: Path, root: Path) -> str:
    rel = path.relative_to(root).as_posix()
    return rel or "."


def _walk(root: Path, exclude: Sequence[Path]) -> Iterator[Path]:
    """Files under *root*, sorted, without hidden ones and without the *exclude* folders."""
    skip = {p.resolve() for p in exclude}
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (here / d).resolve() not in skip)
        for name in sorted(files):
            if not name.startswith("."):
                yield here / name


def _dicom_header(path: Path) -> Any:
    """The few header elements discovery needs, without reading pixel data."""
    import pydicom

    from ..studies.dicom_tags import looks_like_dicom, quiet_values

    try:
        with quiet_values():
            ds = pydicom.dcmread(path, stop_before_pixels=True, force=True, specific_tags=_HEADER_TAGS)
    except EOFError:
        raise TruncatedStudyError("The file is incomplete: its DICOM header ends early.", path=str(path)) from None
    except Exception as exc:
        raise CorruptStudyError("The file is damaged: its DICOM header could not be read.",
                                detail=type(exc).__name__, path=str(path)) from None
    if not looks_like_dicom(ds):
        raise UnsupportedStudyError("This file is not a DICOM image.", path=str(path))
    return ds


def discover(root: str | os.PathLike[str], *, exclude: Sequence[str | os.PathLike[str]] = ()) -> Discovery:
    """The studies under *root* (see the module's docstring), in path order.

    *exclude*: folders not to read (the batch's own output folder when it lies inside *root*).
    """
    root = Path(root)
    found: list[BatchStudy | str] = []  # a study, or the UID of a series (its files are still being found)
    series: dict[str, _Series] = {}
    skipped = {"document(s)": 0, "DICOM file(s) without an image": 0}
    for path in _walk(root, [Path(p) for p in exclude]):
        rel = _rel(path, root)
        if path.name.upper() == "DICOMDIR":  # the index of a DICOM folder, not an image
            skipped["DICOM file(s) without an image"] += 1
            continue
        try:
            kind = sniff(path)
            ds = _dicom_header(path) if kind is FileKind.DICOM else None
        except StudyLoadError as exc:
            if isinstance(exc, UnsupportedStudyError) and path.suffix.lower() in DOCUMENT_SUFFIXES:
                skipped["document(s)"] += 1
            else:
                found.append(BatchStudy(path, rel, "unreadable", error=str(exc), error_type=type(exc).__name__))
            continue
        if ds is None:
            found.append(BatchStudy(path, rel, "nifti" if kind is FileKind.NIFTI else "image"))
        elif "Rows" not in ds or "Columns" not in ds:  # a report, presentation state, key object...
            skipped["DICOM file(s) without an image"] += 1
        elif not (uid := str(ds.get("SeriesInstanceUID", "") or "").strip()):
            found.append(BatchStudy(path, rel, "dicom"))  # a file that names no series is a study of its own
        else:
            if uid not in series:
                series[uid] = _Series([], str(ds.get("SeriesNumber", "") or "").strip())
                found.append(uid)
            series[uid].files.append(path)
    studies = _label_shared_folders([_series_study(root, s, series) if isinstance(s, str) else s for s in found])
    return Discovery(sorted(studies, key=lambda s: (s.rel, s.series_label)), {k: v for k, v in skipped.items() if v})


def _series_study(root: Path, uid: str, series: dict[str, _Series]) -> BatchStudy:
    s = series[uid]
    if len(s.files) == 1:
        return BatchStudy(s.files[0], _rel(s.files[0], root), "dicom", series_uid=uid)
    folder = Path(os.path.commonpath([str(f.parent) for f in s.files]))
    return BatchStudy(folder, _rel(folder, root), "dicom", series_uid=uid, series_label=s.number, n_files=len(s.files))


def _label_shared_folders(studies: list[BatchStudy]) -> list[BatchStudy]:
    """Series that share a folder are told apart by their Series Number (else their order)."""
    by_rel: dict[str, list[int]] = {}
    for i, s in enumerate(studies):
        by_rel.setdefault(s.rel, []).append(i)
    out = list(studies)
    for indices in by_rel.values():
        if len(indices) == 1:
            out[indices[0]] = _replace_label(studies[indices[0]], "")
            continue
        numbers = [studies[i].series_label for i in indices]
        unique = all(numbers) and len(set(numbers)) == len(numbers)
        for n, i in enumerate(indices, 1):
            out[i] = _replace_label(studies[i], f"series-{numbers[n - 1] if unique else n}")
    return out


def _replace_label(s: BatchStudy, label: str) -> BatchStudy:
    return replace(s, series_label=label)


def export_names(studies: Iterable[BatchStudy]) -> dict[BatchStudy, str]:
    """Each study's output folder name, unique within the batch (a suffix tells clashes apart)."""
    names: dict[BatchStudy, str] = {}
    taken: set[str] = set()
    for s in studies:
        name, n = s.name, 1
        while name.lower() in taken:
            n += 1
            name = f"{s.name}-{n}"
        taken.add(name.lower())
        names[s] = name
    return names


# ------------------------------------------------------------------------------ running


@dataclass
class StudyOutcome:
    """One study's result: the analysis (None when it failed) and why it failed.

    ``stage`` says which step failed: "open" (the study could not be read) or "analysis" (the
    pair could not analyse it); ``error`` is one sentence for the user.
    """

    item: BatchStudy
    study: Study | None = None
    analysis: Analysis | None = None
    pair: ModelPair | None = None
    stage: str | None = None
    error: str | None = None
    exception: BaseException | None = None
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.analysis is not None


class BatchRunner:
    """One review session and one engine for the whole batch: the pair loads once.

    Each study goes the way a single ``medkd analyze`` goes (open, propose the forced pair,
    the session's job, the engine), so a batch row and a single analysis of the same study
    report the same figures.
    """

    def __init__(self, task: str, *, registry: ModelRegistry | None = None, device: str | None = None,
                 method: str = "gradcam", target: str | None = None) -> None:
        self.registry = registry if registry is not None else ModelRegistry()
        self.task, self.method, self.target = task, method, target
        self.session = ReviewSession(self.registry, forced_task=task)
        self.engine = Engine(self.registry, device)

    @property
    def pair(self) -> ModelPair | None:
        return self.session.pairs.get(self.task)

    def load(self) -> ModelPair:
        """Load both models now (raises ModelUnavailableError); later studies reuse them."""
        self.engine.load_pair(self.task)
        return self.engine.registry.pair(self.task)

    def run(self, item: BatchStudy) -> StudyOutcome:
        """Analyse one study; every failure of the study itself is returned, never raised
        (an interrupt still propagates)."""
        t0 = time.perf_counter()
        out = StudyOutcome(item, pair=self.pair)
        try:
            if item.error is not None:
                out.stage, out.error = "open", item.error
                return out
            try:
                study = open_study(item.path, series_uid=item.series_uid if item.n_files > 1 else None)
            except StudyLoadError as exc:
                out.stage, out.error, out.exception = "open", str(exc), exc
                return out
            out.study = study
            self.session.study = study
            self.session.method, self.session.target = self.method, self.target
            proposal = self.session.propose()
            out.warnings = list(proposal.messages)
            job = self.session.job()
            if proposal.task is None or job is None:
                out.stage, out.error = "analysis", proposal.note or f"The {self.task} models cannot analyse this study."
                return out
            try:
                out.analysis = self.engine.analyze(**job.kwargs(), strip=False)
            except AnalysisError as exc:
                out.stage, out.error, out.exception = "analysis", str(exc), exc
                return out
            out.pair = job.pair
            out.warnings = list(dict.fromkeys([*out.warnings, *out.analysis.warnings]))
            return out
        except Exception as exc:  # a reader or session bug must not end a batch of thousands
            log.warning("batch: unexpected %s while analysing a study", type(exc).__name__)  # the text may hold a path
            out.analysis = None
            out.stage, out.exception = "analysis", exc
            out.error = "The study could not be analysed because of an unexpected error; the log has details."
            return out
        finally:
            self.session.study = None  # the next study replaces it; its pixels are not kept
            out.seconds = time.perf_counter() - t0


# ------------------------------------------------------------------------------ triage rows


def error_text(step: str, why: str) -> str:
    """One failure as a user reads it: the sentence itself when the study could not be opened
    or analysed, else which export failed."""
    return why if step in ("open", "analysis") else f"The {step} export failed: {why}"


def result_fields(result: dict[str, Any]) -> dict[str, Any]:
    """The part of a ``ModelResult.to_dict()`` a batch line keeps."""
    return {k: result[k] for k in RESULT_FIELDS if k in result}


def study_line(outcome: StudyOutcome, method: str, extra_errors: dict[str, str] | None = None) -> dict[str, Any]:
    """The JSON line of one study: path, both models' calibrated probabilities, predictions and
    ``ood``, agreement, warnings and ``errors`` (step -> one sentence)."""
    item, analysis = outcome.item, outcome.analysis
    errors = {outcome.stage or "study": outcome.error} if outcome.error else {}
    errors.update(extra_errors or {})
    line: dict[str, Any] = {"path": item.rel, "series": item.series_label or None, "task": None,
                            "teacher": None, "student": None, "same_class": None, "agreement": None}
    if analysis is not None:
        full = analysis.to_dict()
        line.update(task=full["task"], teacher=result_fields(full["teacher"]), student=result_fields(full["student"]),
                    same_class=full["same_class"], agreement=full["agreement"].get(method))
    line["warnings"] = list(outcome.warnings)
    line["errors"] = errors
    return line


@dataclass
class TriageRow:
    """One study's row of ``summary.csv``; every number is None when unknown (empty cell)."""

    path: str
    series: str
    status: str  # "ok" or "error"
    disagree: bool | None = None  # teacher and student predict different classes
    heatmap_disagreement: float | None = None  # 1 - Pearson r of the two heatmaps (0: same, 2: opposite)
    teacher_ood_score: float | None = None  # higher: less like the model's training data
    student_ood_score: float | None = None
    out_of_distribution: bool | None = None  # either model's OOD check says so
    teacher_uncertainty: float | None = None  # 1 - calibrated top probability
    student_uncertainty: float | None = None
    teacher_predicted: str = ""
    student_predicted: str = ""
    teacher_probabilities: dict[str, float] = field(default_factory=dict)
    student_probabilities: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    error: str = ""

    @classmethod
    def from_line(cls, line: dict[str, Any]) -> TriageRow:
        """The row of a study's JSON line (:func:`study_line`); absent fields stay empty."""
        errors = line.get("errors") or {}
        row = cls(path=line["path"], series=line.get("series") or "",
                  status="error" if line.get("teacher") is None else "ok",
                  warnings=list(line.get("warnings") or []),
                  error=" ".join(error_text(step, why) for step, why in errors.items()))
        teacher, student = line.get("teacher"), line.get("student")
        if not (isinstance(teacher, dict) and isinstance(student, dict)):
            return row
        row.teacher_predicted = str(teacher.get("predicted", ""))
        row.student_predicted = str(student.get("predicted", ""))
        row.disagree = row.teacher_predicted != row.student_predicted
        pearson = _number((line.get("agreement") or {}).get("pearson"))
        row.heatmap_disagreement = None if pearson is None else 1.0 - pearson
        row.teacher_probabilities = _probabilities(teacher)
        row.student_probabilities = _probabilities(student)
        row.teacher_uncertainty = _uncertainty(row.teacher_probabilities)
        row.student_uncertainty = _uncertainty(row.student_probabilities)
        t_ood, s_ood = _ood(teacher), _ood(student)
        row.teacher_ood_score, row.student_ood_score = t_ood.get("score"), s_ood.get("score")
        flags = [o["in_distribution"] for o in (t_ood, s_ood) if o.get("in_distribution") is not None]
        row.out_of_distribution = (not all(flags)) if flags else None
        return row

    def cells(self, classes: Sequence[str]) -> list[str]:
        """The CSV cells, in :func:`summary_columns` order."""
        return [self.path, self.series, self.status, _cell(self.disagree), _cell(self.heatmap_disagreement),
                _cell(self.teacher_ood_score), _cell(self.student_ood_score), _cell(self.out_of_distribution),
                _cell(self.teacher_uncertainty), _cell(self.student_uncertainty),
                self.teacher_predicted, self.student_predicted,
                *(_cell(self.teacher_probabilities.get(c)) for c in classes),
                *(_cell(self.student_probabilities.get(c)) for c in classes),
                " | ".join(self.warnings), self.error]


def summary_columns(classes: Sequence[str]) -> list[str]:
    """``summary.csv``'s header: the sort keys first, then predictions, probabilities, messages."""
    return ["path", "series", "status", "disagree", "heatmap_disagreement", "teacher_ood_score",
            "student_ood_score", "out_of_distribution", "teacher_uncertainty", "student_uncertainty",
            "teacher_predicted", "student_predicted", *(f"teacher_p_{c}" for c in classes),
            *(f"student_p_{c}" for c in classes), "warnings", "error"]


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _probabilities(result: dict[str, Any]) -> dict[str, float]:
    probs = result.get("probabilities")
    if not isinstance(probs, dict):
        return {}
    return {str(c): p for c, v in probs.items() if (p := _number(v)) is not None}


def _uncertainty(probabilities: dict[str, float]) -> float | None:
    return 1.0 - max(probabilities.values()) if probabilities else None


def _ood(result: dict[str, Any]) -> dict[str, Any]:
    """The ``ood`` entry as {"score": float|None, "in_distribution": bool|None}, whatever its shape."""
    ood = result.get("ood")
    if not isinstance(ood, dict):
        return {}
    flag = ood.get("in_distribution")
    return {"score": _number(ood.get("score")), "in_distribution": flag if isinstance(flag, bool) else None}


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


class SummaryTable:
    """``summary.csv``, rewritten whole through a temporary file and a rename, so a reader (or
    an interrupted batch) only ever finds a complete table.

    Rewriting costs time in proportion to the rows, so after the first rows it happens at most
    every *interval* seconds; :meth:`close` (also on an interrupt) writes the last rows.
    """

    def __init__(self, path: str | os.PathLike[str], classes: Sequence[str], interval: float = 1.0) -> None:
        self.path = Path(path)
        self.classes = list(classes)
        self.interval = interval
        self.rows: list[TriageRow] = []
        self._written_at = -math.inf
        self._dirty = False

    def add(self, row: TriageRow) -> None:
        self.rows.append(row)
        self._dirty = True
        if time.monotonic() - self._written_at >= self.interval:
            self.write()

    def write(self) -> None:
        import csv

        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "w", newline="", encoding="utf-8") as f:
                writer = csv.writer(f)
                writer.writerow(summary_columns(self.classes))
                writer.writerows(r.cells(self.classes) for r in self.rows)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)
        self._written_at = time.monotonic()
        self._dirty = False

    def close(self) -> None:
        if self._dirty or not self.path.exists():
            self.write()
