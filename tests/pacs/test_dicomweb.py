"""The same calls over DICOMweb (QIDO-RS, WADO-RS, STOW-RS) against Orthanc's DICOMweb plugin."""
from __future__ import annotations

import time

import pydicom
import pytest
from orthanc_server import assert_same_pixels, copy_as_new_series

from medkd_desktop.pacs import DicomWebClient, DimseClient, PacsCancelledError, PacsInputError, StudyQuery, open_client


@pytest.fixture
def web(orthanc, tmp_path) -> DicomWebClient:
    return open_client(orthanc.dicomweb_server(), orthanc.settings(tmp_path / "cache"))


def test_echo_and_find_give_the_same_records_as_dimse(web, orthanc, tmp_path):
    assert web.echo().elapsed_ms > 0
    dimse = DimseClient(orthanc.server(), orthanc.settings(tmp_path))
    mr, cr = orthanc.item("mr_series"), orthanc.item("cr_chest")
    for query in (StudyQuery(patient_id=cr.patient_id), StudyQuery(study_uid=mr.study_uid), StudyQuery(modality="CR")):
        assert web.find_studies(query) == dimse.find_studies(query)
    query = StudyQuery(study_uid=mr.study_uid)
    key = lambda s: s.series_uid  # noqa: E731
    assert sorted(web.find_series(query), key=key) == sorted(dimse.find_series(query), key=key)
    assert [s.series_uid for s in web.find_series(StudyQuery(patient_id=cr.patient_id))] == [cr.series_uid]


def test_retrieve_a_series_as_stored(web, orthanc):
    mr = orthanc.item("mr_series")
    seen = []
    result = web.retrieve(mr.study_uid, mr.series_uid, progress=lambda d, t: seen.append((d, t)))
    assert result.complete and result.received == 6 and seen[-1] == (6, 6)
    by_uid = {p.stem: p for p in result.images}
    for original, uid in zip(mr.files, mr.sop_uids):
        assert_same_pixels(by_uid[uid], original)


def test_retrieve_a_study_keeps_the_report_aside_and_compressed_files_as_stored(web, orthanc):
    mr = orthanc.item("mr_series")
    result = web.retrieve(mr.study_uid)
    assert result.complete and len(result.images) == 6 and len(result.non_images) == 1
    cr = orthanc.item("cr_chest")  # JPEG baseline: comes back in its own transfer syntax
    assert_same_pixels(web.retrieve(cr.study_uid).images[0], cr.files[0])
    with pytest.raises(PacsInputError, match="C-MOVE"):
        web.retrieve(cr.study_uid, method="move")


def test_cancel_a_web_retrieval(web, orthanc):
    dti = orthanc.item("dti_series")
    received: list[int] = []
    started = time.monotonic()
    with pytest.raises(PacsCancelledError) as info:
        web.retrieve(dti.study_uid, dti.series_uid, progress=lambda d, t: received.append(d),
                     cancel=lambda: bool(received) and received[-1] >= 3)
    assert time.monotonic() - started < 3 and info.value.partial.received == 3


def test_stow_stores_into_the_study(web, orthanc, tmp_path):
    mr = orthanc.item("mr_small")
    copy = copy_as_new_series(mr.files[0], tmp_path / "stow", 1, study_uid=mr.study_uid)[0]
    before = len(orthanc.series_of_study(mr.study_uid))
    result = web.store([copy])
    assert result.ok and result.stored == (str(pydicom.dcmread(copy).SOPInstanceUID),)
    assert len(orthanc.series_of_study(mr.study_uid)) == before + 1
