"""What goes in and comes out of the PACS calls: queries, found studies and series, results.

Why plain frozen dataclasses: the GUI passes them between a worker thread and the window, the
CLI prints them as JSON, and neither should hold a pydicom Dataset. Patient name, ID and birth
date are in the records because choosing a study is their purpose, but they are left out of
``repr()`` so a record that ends up in a log line or a traceback does not leak them.
"""
from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import PacsInputError

#: ``progress(done, total)``: instances (or responses) done so far and the total expected, or
#: None when the server has not said. Called only in the thread that made the call.
Progress = Callable[[int, "int | None"], None]
#: ``cancel()`` -> True to stop as soon as possible (e.g. ``threading.Event().is_set``). Polled
#: about every 50 ms and after every instance, only in the thread that made the call.
Cancel = Callable[[], bool]

_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")


def check_uid(uid: str, what: str = "UID") -> str:
    uid = (uid or "").strip()
    if not uid or len(uid) > 64 or not _UID.match(uid):
        raise PacsInputError(f"The {what} {uid!r} is not a DICOM UID (digits and dots, at most 64 characters).")
    return uid


def _date(text: str) -> dt.date:
    digits = text.replace("-", "").replace(".", "")
    try:
        return dt.datetime.strptime(digits, "%Y%m%d").date()
    except ValueError:
        raise ValueError(text) from None


def parse_date_range(text: str) -> tuple[dt.date | None, dt.date | None]:
    """``YYYYMMDD-YYYYMMDD``, ``YYYYMMDD-`` (from), ``-YYYYMMDD`` (until) or ``YYYYMMDD`` (that day);
    ISO dates around ``..`` (``2024-01-01..2024-03-31``) as well."""
    text = (text or "").strip()
    try:
        if ".." in text:
            lo, hi = text.split("..", 1)
        elif re.fullmatch(r"\d{8}", text):
            lo = hi = text
        elif re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            lo = hi = text
        elif re.fullmatch(r"(\d{8})?-(\d{8})?", text):
            lo, hi = text.split("-", 1)
        else:
            raise ValueError(text)
        start = _date(lo) if lo.strip() else None
        end = _date(hi) if hi.strip() else None
    except ValueError:
        raise PacsInputError(f"The date range {text!r} is not valid; write it as YYYYMMDD-YYYYMMDD "
                             "(either side may be left empty).") from None
    if start is None and end is None:
        raise PacsInputError("The date range is empty; give a start date, an end date or both.")
    if start and end and start > end:
        raise PacsInputError("The date range ends before it starts.")
    return start, end


@dataclass(frozen=True)
class StudyQuery:
    """Filters of a search; empty fields do not filter. ``patient_name`` may hold ``*`` and ``?``
    wildcards (DICOM PN matching: ``DOE^J*``). Dates are inclusive."""

    patient_id: str = field(default="", repr=False)
    patient_name: str = field(default="", repr=False)
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    modality: str = ""
    accession_number: str = field(default="", repr=False)
    study_uid: str = ""

    def date_range(self) -> str:
        """The DICOM range matching string (``20240101-20240331``, ``20240101-``), or ""."""
        if self.date_from is None and self.date_to is None:
            return ""
        lo = self.date_from.strftime("%Y%m%d") if self.date_from else ""
        hi = self.date_to.strftime("%Y%m%d") if self.date_to else ""
        return lo if lo == hi else f"{lo}-{hi}"

    def checked(self) -> StudyQuery:
        if self.study_uid:
            check_uid(self.study_uid, "StudyInstanceUID")
        if self.modality and not re.fullmatch(r"[A-Z0-9]{1,16}", self.modality.strip().upper()):
            raise PacsInputError(f"The modality {self.modality!r} is not a DICOM modality code (e.g. CR, CT, MR).")
        return self


@dataclass(frozen=True)
class StudyRecord:
    study_uid: str
    patient_id: str = field(default="", repr=False)
    patient_name: str = field(default="", repr=False)
    patient_birth_date: str = field(default="", repr=False)
    study_date: str = ""  # YYYYMMDD as the PACS holds it
    study_time: str = ""
    accession_number: str = field(default="", repr=False)
    description: str = ""
    modalities: tuple[str, ...] = ()
    n_series: int | None = None
    n_instances: int | None = None

    def to_json(self) -> dict:
        return {**asdict(self), "modalities": list(self.modalities)}


@dataclass(frozen=True)
class SeriesRecord:
    study_uid: str
    series_uid: str
    modality: str = ""
    series_number: int | None = None
    description: str = ""
    body_part: str = ""
    n_instances: int | None = None

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class InstanceRef:
    """One instance the server listed before a retrieval: what to expect and to report missing."""

    series_uid: str
    sop_uid: str
    sop_class_uid: str = ""


@dataclass(frozen=True)
class EchoResult:
    server: str
    ae_title: str
    elapsed_ms: float


@dataclass(frozen=True)
class RetrieveResult:
    """What a retrieval wrote. ``folder`` is the study's folder in the cache (give it, or one of
    ``series_folders``, to ``studies.open_study``); image files sit in ``folder/<series_uid>/``,
    files without pixel data (reports, presentation states, key objects) in
    ``folder/non-image/<series_uid>/``. ``expected`` is what the server listed (None when it
    could not say); ``missing`` the SOP Instance UIDs listed but not received. ``problem`` is the
    sentence to show when the retrieval is not complete."""

    study_uid: str
    series_uid: str | None
    folder: Path
    expected: int | None
    images: tuple[Path, ...] = ()
    non_images: tuple[Path, ...] = ()
    missing: tuple[str, ...] = ()
    failed: int = 0
    problem: str = ""

    @property
    def received(self) -> int:
        return len(self.images) + len(self.non_images)

    @property
    def complete(self) -> bool:
        return (not self.problem and not self.missing and not self.failed
                and (self.expected is None or self.received >= self.expected))

    @property
    def series_folders(self) -> dict[str, Path]:
        """Series UID -> its image folder, for the series that received at least one image."""
        return {p.parent.name: p.parent for p in self.images}

    def to_json(self) -> dict:
        return {"study_uid": self.study_uid, "series_uid": self.series_uid, "folder": str(self.folder),
                "expected": self.expected, "received": self.received, "images": len(self.images),
                "non_images": len(self.non_images), "missing": list(self.missing), "failed": self.failed,
                "complete": self.complete, "problem": self.problem,
                "series_folders": {k: str(v) for k, v in self.series_folders.items()}}


@dataclass(frozen=True)
class StoreResult:
    """``stored``: SOP Instance UIDs the PACS accepted; ``failed``: file -> sentence why not;
    ``warnings``: accepted with a warning status (e.g. the PACS coerced a value)."""

    stored: tuple[str, ...] = ()
    failed: dict[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_json(self) -> dict:
        return {"stored": list(self.stored), "failed": dict(self.failed), "warnings": list(self.warnings)}
