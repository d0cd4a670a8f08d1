"""C-ECHO, C-FIND, C-GET, C-MOVE and C-STORE against a live Orthanc filled with real DICOM files."""
from __future__ import annotations

import datetime as dt
import threading
import time
from pathlib import Path

import pydicom
import pytest
from orthanc_server import assert_same_pixels, copy_as_new_series

from medkd_desktop.pacs import (DimseClient, PacsCancelledError, PacsRequestFailedError, RetrieveResult, StudyQuery,
                                open_client)
from medkd_desktop.studies import open_study


@pytest.fixture
def client(orthanc, tmp_path) -> DimseClient:
    return DimseClient(orthanc.server(), orthanc.settings(tmp_path / "cache"))


def test_echo(client):
    result = client.echo()
    assert result.ae_title == "ORTHANC" and 0 < result.elapsed_ms < 5000


def test_find_studies_with_each_filter(client, orthanc):
    cr, dx, mr = orthanc.item("cr_chest"), orthanc.item("dx_chest"), orthanc.item("mr_series")
    everything = {s.study_uid for s in client.find_studies()}
    assert {cr.study_uid, dx.study_uid, mr.study_uid} <= everything

    def uids(**filters) -> set[str]:
        return {s.study_uid for s in client.find_studies(StudyQuery(**filters))}

    assert uids(patient_id=cr.patient_id) == {cr.study_uid}
    assert uids(patient_name=mr.patient_name) == {mr.study_uid}
    assert mr.study_uid in uids(patient_name=mr.patient_name[:3] + "*")  # wildcard
    assert uids(modality="CR") == {cr.study_uid}
    assert uids(modality="DX") == {dx.study_uid}
    assert uids(study_uid=mr.study_uid) == {mr.study_uid}
    feb_2012 = uids(date_from=dt.date(2012, 2, 1), date_to=dt.date(2012, 2, 29))
    assert mr.study_uid in feb_2012 and cr.study_uid not in feb_2012  # CR is from 1901
    assert cr.study_uid in uids(date_to=dt.date(1950, 1, 1)) and dx.study_uid not in uids(date_to=dt.date(1950, 1, 1))
    # None of the real files carries a usable accession number: a copy in a new study gets one.
    accession = "ACC-MEDKD-1"
    assert not uids(accession_number=accession)
    copy = copy_as_new_series(orthanc.item("mr_small").files[0], Path(orthanc.root) / "acc", 1)[0]
    ds = pydicom.dcmread(copy)
    ds.AccessionNumber = accession
    ds.save_as(copy)
    orthanc.upload(copy)
    assert uids(accession_number=accession) == {ds.StudyInstanceUID}

    record = next(s for s in client.find_studies(StudyQuery(study_uid=mr.study_uid)))
    assert (record.patient_id, record.patient_name, record.study_date) == (mr.patient_id, mr.patient_name, "20120215")
    assert record.modalities and "MR" in record.modalities and record.n_instances == len(mr.files) + 1  # + the SR


def test_find_series_in_a_study_and_by_study_filters(client, orthanc):
    mr = orthanc.item("mr_series")
    series = client.find_series(StudyQuery(study_uid=mr.study_uid))
    by_uid = {s.series_uid: s for s in series}
    assert by_uid[mr.series_uid].n_instances == len(mr.files) and by_uid[mr.series_uid].modality == "MR"
    assert {s.modality for s in series} == {"MR", "SR"}  # the images and the report
    only_mr = client.find_series(StudyQuery(study_uid=mr.study_uid, modality="MR"))
    assert [s.series_uid for s in only_mr] == [mr.series_uid]
    # Without a study UID: studies matching the filters first, then their series.
    cr = orthanc.item("cr_chest")
    assert [s.series_uid for s in client.find_series(StudyQuery(patient_id=cr.patient_id))] == [cr.series_uid]


def test_get_a_single_cr_image_identical_to_the_uploaded_file(client, orthanc):
    cr = orthanc.item("cr_chest")
    seen: list[tuple[int, int | None, str]] = []
    result = client.retrieve(cr.study_uid, progress=lambda d, t: seen.append((d, t, threading.current_thread().name)))
    assert isinstance(result, RetrieveResult) and result.complete and not result.problem
    assert (result.received, result.expected, result.missing) == (1, 1, ())
    assert result.images[0] == result.folder / cr.series_uid / f"{cr.sop_uids[0]}.dcm"
    assert_same_pixels(result.images[0], cr.files[0])
    assert seen[-1][:2] == (1, 1) and {name for *_, name in seen} == {threading.current_thread().name}
    study = open_study(result.folder)
    assert study.modality == "CR" and study.n_frames == 1


def test_get_a_series_and_multi_frame_files(client, orthanc):
    dti = orthanc.item("dti_series")
    result = client.retrieve(dti.study_uid, dti.series_uid)
    assert result.complete and result.received == len(dti.files) == 40
    by_uid = {p.stem: p for p in result.images}
    for original, uid in zip(dti.files, dti.sop_uids):
        assert_same_pixels(by_uid[uid], original)
    assert open_study(result.series_folders[dti.series_uid]).n_slices == 40
    for name in ("enhanced_mr", "us_multiframe"):
        item = orthanc.item(name)
        result = client.retrieve(item.study_uid)
        assert result.complete and result.received == 1
        assert_same_pixels(result.images[0], item.files[0])
        assert pydicom.dcmread(result.images[0]).NumberOfFrames == pydicom.dcmread(item.files[0]).NumberOfFrames > 1


def test_get_keeps_non_image_instances_aside(client, orthanc):
    mr = orthanc.item("mr_series")
    result = client.retrieve(mr.study_uid)
    assert result.complete and len(result.images) == 6 and len(result.non_images) == 1
    sr = result.non_images[0]
    assert sr.parent.parent == result.folder / "non-image" and pydicom.dcmread(sr).Modality == "SR"
    study = open_study(result.folder)  # the study folder opens on its image series
    assert study.n_slices == 6
    assert any("without an image" in w for w in study.warnings)


def test_move_to_our_storage_scp(client, orthanc):
    mr = orthanc.item("mr_series")
    result = client.retrieve(mr.study_uid, mr.series_uid, method="move")
    assert result.complete and result.received == 6
    by_uid = {p.stem: p for p in result.images}
    for original, uid in zip(mr.files, mr.sop_uids):
        assert_same_pixels(by_uid[uid], original)


def _new_series(orthanc, folder: Path, n: int) -> list[pydicom.Dataset]:
    files = copy_as_new_series(orthanc.item("mr_small").files[0], folder, n)
    for f in files:
        orthanc.upload(f)
    return [pydicom.dcmread(f, stop_before_pixels=True) for f in files]


def test_a_partial_retrieval_says_what_is_missing(client, orthanc, tmp_path):
    series = _new_series(orthanc, tmp_path / "partial", 3)
    lost = str(series[1].SOPInstanceUID)

    def progress(done, total):  # called once the PACS has listed the study, before the transfer starts
        if done == 0:
            orthanc.storage_file(lost).unlink()  # the PACS loses a file in between

    result = client.retrieve(str(series[0].StudyInstanceUID), progress=progress)
    assert not result.complete and result.expected == 3 and lost in result.missing
    assert result.received + len(result.missing) == 3 and lost not in {p.stem for p in result.images}
    assert result.problem.startswith(f"Only {result.received} of 3 instances arrived")
    assert result.to_json()["complete"] is False


def test_a_partial_retrieval_without_a_listing_counts_from_the_pacs(client, orthanc, tmp_path):
    # With a file lost before the query, Orthanc refuses the IMAGE-level listing too: the expected
    # count then comes from the C-GET's own sub-operation counts.
    series = _new_series(orthanc, tmp_path / "partial2", 3)
    orthanc.storage_file(str(series[2].SOPInstanceUID)).unlink()
    try:
        result = client.retrieve(str(series[0].StudyInstanceUID))
    except PacsRequestFailedError:  # Orthanc tried the lost file first: nothing arrived
        return
    assert not result.complete and result.received < 3 and result.problem
    assert result.expected in (None, 3)


@pytest.mark.parametrize("method", ["get", "move"])
def test_cancel_halfway_leaves_whole_files_and_a_partial_result(client, orthanc, method):
    dti = orthanc.item("dti_series")
    received: list[int] = []
    started = time.monotonic()
    with pytest.raises(PacsCancelledError) as info:
        client.retrieve(dti.study_uid, dti.series_uid, method=method, progress=lambda d, t: received.append(d),
                        cancel=lambda: bool(received) and received[-1] >= 3)
    assert time.monotonic() - started < 3
    partial = info.value.partial
    assert partial is not None and partial.received == 3 and not partial.complete  # cancel is checked per instance
    assert len(partial.missing) == 37
    time.sleep(0.3)  # nothing arrives after the call returned
    files = [p for p in partial.folder.rglob("*") if p.is_file()]
    assert sorted(files) == sorted(partial.images)  # no temporary or half-written file
    for f in files:
        assert len(pydicom.dcmread(f).PixelData) == 64 * 64 * 2  # whole images


def test_send_stores_a_file_into_its_study(client, orthanc, tmp_path):
    mr = orthanc.item("mr_small")
    copy = copy_as_new_series(mr.files[0], tmp_path / "send", 1, study_uid=mr.study_uid)[0]
    note = tmp_path / "not-dicom.txt"
    note.write_text("hello")
    before = len(orthanc.series_of_study(mr.study_uid))
    seen = []
    result = open_client(orthanc.server(), orthanc.settings(tmp_path)).store([copy, note],
                                                                             progress=lambda d, t: seen.append((d, t)))
    assert result.stored == (str(pydicom.dcmread(copy).SOPInstanceUID),)
    assert list(result.failed) == [str(note)] and seen[-1] == (1, 2)
    assert len(orthanc.series_of_study(mr.study_uid)) == before + 1
