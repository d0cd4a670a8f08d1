"""Every typed app error shares one base, so the window and the CLI show any of them the same way."""
from __future__ import annotations

import pickle

import pytest

from medkd_desktop.errors import MedKDError
from medkd_desktop.models.weights import ModelIntegrityError, ModelLoadError
from medkd_desktop.report.errors import NotDicomError, ReportError
from medkd_desktop.studies.errors import MissingCodecError, StudyLoadError, TruncatedStudyError


@pytest.mark.parametrize("cls", [StudyLoadError, TruncatedStudyError, MissingCodecError, ReportError, NotDicomError,
                                 ModelLoadError, ModelIntegrityError])
def test_each_error_is_a_medkd_error_with_its_own_default_sentence(cls):
    exc = cls(detail="LibraryError: boom at 0x1f")
    assert isinstance(exc, MedKDError)
    assert str(exc) == cls.message and str(exc).endswith(".")
    assert exc.detail == "LibraryError: boom at 0x1f" and "boom" not in str(exc)


def test_a_given_sentence_replaces_the_default_and_a_study_error_keeps_its_path():
    exc = StudyLoadError("The file could not be read.", detail="OSError: EACCES", path="/x/a.dcm")
    assert (str(exc), exc.detail, exc.path) == ("The file could not be read.", "OSError: EACCES", "/x/a.dcm")


def test_errors_survive_a_process_boundary():
    """Training data is read in worker processes; their errors come back pickled."""
    exc = pickle.loads(pickle.dumps(TruncatedStudyError(detail="short read", path="p")))
    assert (type(exc), str(exc), exc.detail, exc.path) == (TruncatedStudyError, TruncatedStudyError.message, "short read", "p")
