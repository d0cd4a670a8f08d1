"""What needs no server: addresses, date ranges, records' privacy, the error family, the cache's writes."""
from __future__ import annotations

import datetime as dt
import pickle
import warnings

import pytest

from medkd_desktop.errors import MedKDError
from medkd_desktop.pacs import (PacsCalledAETitleError, PacsCancelledError, PacsError, PacsInputError, PacsServer,
                                PacsSettings, PacsTimeoutError, StudyQuery, StudyRecord, open_client,
                                parse_date_range)


@pytest.mark.parametrize("text, expected", [
    ("ORTHANC@127.0.0.1:4242", ("ORTHANC", "127.0.0.1", 4242, "")),
    (" PACS main@pacs.hospital.local:104 ", ("PACS main", "pacs.hospital.local", 104, "")),
    ("AE@[::1]:11112", ("AE", "::1", 11112, "")),
    ("http://127.0.0.1:8042/dicom-web/", ("", "", 0, "http://127.0.0.1:8042/dicom-web")),
])
def test_an_address_parses_into_a_server(text, expected):
    server = PacsServer.parse(text)
    assert (server.ae_title, server.host, server.port, server.url) == expected
    assert PacsServer.parse(str(server)) == server  # round trip, as the settings store it


@pytest.mark.parametrize("text, words", [
    ("127.0.0.1:4242", "AET@HOST:PORT"),
    ("ORTHANC@127.0.0.1", "AET@HOST:PORT"),
    ("A_TITLE_THAT_IS_FAR_TOO_LONG@h:104", "1 to 16"),
    ("AE@host:70000", "between 1 and 65535"),
    ("http://:8042/dicom-web", "no host"),
])
def test_a_bad_address_is_an_input_error_naming_the_form(text, words):
    with pytest.raises(PacsInputError, match=words.replace("^", r"\^")):
        PacsServer.parse(text)


def test_open_client_picks_the_transport_by_address():
    assert type(open_client("A@h:104")).__name__ == "DimseClient"
    assert type(open_client("https://pacs.example/dicom-web")).__name__ == "DicomWebClient"
    with pytest.raises(PacsInputError, match="MedKD AE title"):
        open_client("A@h:104", PacsSettings(ae_title=""))


@pytest.mark.parametrize("text, expected", [
    ("20240101-20240331", (dt.date(2024, 1, 1), dt.date(2024, 3, 31))),
    ("20240101-", (dt.date(2024, 1, 1), None)),
    ("-20240331", (None, dt.date(2024, 3, 31))),
    ("20240229", (dt.date(2024, 2, 29), dt.date(2024, 2, 29))),
    ("2024-01-01..2024-03-31", (dt.date(2024, 1, 1), dt.date(2024, 3, 31))),
])
def test_date_ranges(text, expected):
    assert parse_date_range(text) == expected


@pytest.mark.parametrize("text", ["2024", "20241301-", "20240301-20240101", "-", "yesterday"])
def test_bad_date_ranges(text):
    with pytest.raises(PacsInputError):
        parse_date_range(text)


def test_a_query_renders_its_date_range_as_dicom_matching():
    assert StudyQuery(date_from=dt.date(2024, 1, 1)).date_range() == "20240101-"
    assert StudyQuery(date_from=dt.date(2024, 1, 1), date_to=dt.date(2024, 1, 1)).date_range() == "20240101"
    with pytest.raises(PacsInputError, match="modality"):
        StudyQuery(modality="C R").checked()


def test_records_keep_identifiers_out_of_repr():
    record = StudyRecord(study_uid="1.2.3", patient_id="PID-0042", patient_name="DOE^JANE",
                         patient_birth_date="19700101", accession_number="ACC9")
    text = repr(record) + repr(StudyQuery(patient_id="PID-0042", patient_name="DOE^JANE"))
    for secret in ("PID-0042", "DOE^JANE", "19700101", "ACC9"):
        assert secret not in text
    assert record.to_json()["patient_name"] == "DOE^JANE"  # shown on purpose where asked for


@pytest.mark.parametrize("cls", [PacsError, PacsInputError, PacsCalledAETitleError, PacsTimeoutError, PacsCancelledError])
def test_pacs_errors_are_medkd_errors_with_a_sentence_and_a_reason(cls):
    exc = cls(detail="A-ASSOCIATE-RJ result 1 source 1 reason 7")
    assert isinstance(exc, MedKDError) and str(exc) == cls.message and str(exc).endswith(".")
    assert exc.reason and "reason 7" not in str(exc)
    copy = pickle.loads(pickle.dumps(exc))  # a worker process may hand it back
    assert (type(copy), str(copy), copy.detail, copy.reason) == (cls, str(exc), exc.detail, exc.reason)


def test_cache_writes_whole_files_only(tmp_path):
    from pydicom.dataset import Dataset

    from medkd_desktop.pacs.cache import StudyCache

    cache = StudyCache(tmp_path, "1.2.3")
    ds = Dataset()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about the invalid UID, which is the point
        ds.SeriesInstanceUID, ds.SOPInstanceUID = "../../escape", "4.5.6"
    path = cache.add(ds, b"DICM-bytes")
    study, kind, series, name = path.relative_to(tmp_path).parts  # a hostile UID stays inside, hashed
    assert (study, kind, name) == ("1.2.3", "non-image", "4.5.6.dcm") and series.startswith("x")
    assert cache.non_images == [path] and not cache.images  # no pixel data: kept aside
    assert [p.name for p in path.parent.iterdir()] == ["4.5.6.dcm"]  # no temporary file left
