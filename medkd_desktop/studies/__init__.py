"""Opening studies: DICOM files, multi-frame and series, NIfTI volumes and fMRI, plain images and tiles.

Entry point: :func:`open_study`. Everything it raises is a :class:`StudyLoadError`.
"""
from .errors import (
    CorruptStudyError,
    EmptySeriesError,
    MissingCodecError,
    StudyLoadError,
    StudyTooLargeError,
    TruncatedStudyError,
    UnsupportedStudyError,
)
from .open import open_study
from .sniff import FileKind, sniff
from .study import (
    DisplayWindow,
    Frame,
    MapVolume,
    PatientIdentifiers,
    SafeMetadata,
    SeriesSummary,
    Study,
    StudyKind,
    TileGrid,
)

__all__ = [
    "FileKind",
    "open_study",
    "sniff",
    "CorruptStudyError",
    "DisplayWindow",
    "EmptySeriesError",
    "Frame",
    "MapVolume",
    "MissingCodecError",
    "PatientIdentifiers",
    "SafeMetadata",
    "SeriesSummary",
    "Study",
    "StudyKind",
    "StudyLoadError",
    "StudyTooLargeError",
    "TileGrid",
    "TruncatedStudyError",
    "UnsupportedStudyError",
]
