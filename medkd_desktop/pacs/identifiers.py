"""Queries as DICOM identifiers, and the PACS's answers as records: one mapping for DIMSE and DICOMweb.

Why shared: C-FIND takes a Dataset of keys (empty = "return this"), QIDO-RS takes the same keys
as URL parameters and ``includefield``, and both answer with datasets (QIDO's JSON becomes one
through ``Dataset.from_json``). Writing the keys once keeps the two transports returning the
same records for the same study.
"""
from __future__ import annotations


from pydicom.dataset import Dataset

from ..studies.dicom_tags import patient_identifiers, quiet_values  # also keeps pydicom's own log lines out of ours
from .records import InstanceRef, SeriesRecord, StudyQuery, StudyRecord

STUDY_RETURN_KEYS = ("StudyInstanceUID", "PatientName", "PatientID", "PatientBirthDate", "StudyDate", "StudyTime",
                     "AccessionNumber", "StudyDescription", "ModalitiesInStudy", "NumberOfStudyRelatedSeries",
                     "NumberOfStudyRelatedInstances")
SERIES_RETURN_KEYS = ("StudyInstanceUID", "SeriesInstanceUID", "Modality", "SeriesNumber", "SeriesDescription",
                      "BodyPartExamined", "NumberOfSeriesRelatedInstances")
INSTANCE_RETURN_KEYS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID")


def _blank(keys: tuple[str, ...], level: str) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for key in keys:
        setattr(ds, key, "")
    return ds


def study_identifier(query: StudyQuery) -> Dataset:
    ds = _blank(STUDY_RETURN_KEYS, "STUDY")
    ds.PatientID = query.patient_id.strip()
    ds.PatientName = query.patient_name.strip()
    ds.StudyDate = query.date_range()
    ds.ModalitiesInStudy = query.modality.strip().upper()
    ds.AccessionNumber = query.accession_number.strip()
    ds.StudyInstanceUID = query.study_uid.strip()
    if any(ord(c) > 127 for c in query.patient_name):
        ds.SpecificCharacterSet = "ISO_IR 192"  # UTF-8, so a name with accents matches as typed
    return ds


def series_identifier(study_uid: str, modality: str = "") -> Dataset:
    ds = _blank(SERIES_RETURN_KEYS, "SERIES")
    ds.StudyInstanceUID = study_uid
    ds.Modality = modality.strip().upper()
    return ds


def instance_identifier(study_uid: str, series_uid: str | None = None) -> Dataset:
    ds = _blank(INSTANCE_RETURN_KEYS, "IMAGE")
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid or ""
    return ds


def retrieve_identifier(study_uid: str, series_uid: str | None = None) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "SERIES" if series_uid else "STUDY"
    ds.StudyInstanceUID = study_uid
    if series_uid:
        ds.SeriesInstanceUID = series_uid
    return ds


def _text(ds: Dataset, key: str) -> str:
    value = ds.get(key)
    if value is None:
        return ""
    return str(value).strip()


def _int(ds: Dataset, key: str) -> int | None:
    try:
        return int(str(ds.get(key)).strip())
    except (TypeError, ValueError):
        return None


def from_json(item: dict) -> Dataset:
    """A QIDO-RS answer (DICOM JSON) as a dataset, without value warnings."""
    with quiet_values():
        return Dataset.from_json(item)


def study_record(ds: Dataset) -> StudyRecord:
    patient = patient_identifiers(ds)
    with quiet_values():
        modalities = ds.get("ModalitiesInStudy") or ()
        if isinstance(modalities, str):
            modalities = modalities.split("\\")
        return StudyRecord(
            study_uid=_text(ds, "StudyInstanceUID"), patient_id=patient.patient_id, patient_name=patient.name,
            patient_birth_date=patient.birth_date, study_date=_text(ds, "StudyDate"),
            study_time=_text(ds, "StudyTime"), accession_number=_text(ds, "AccessionNumber"),
            description=_text(ds, "StudyDescription"),
            modalities=tuple(str(m).strip() for m in modalities if str(m).strip()),
            n_series=_int(ds, "NumberOfStudyRelatedSeries"), n_instances=_int(ds, "NumberOfStudyRelatedInstances"),
        )


def series_record(ds: Dataset) -> SeriesRecord:
    with quiet_values():
        return _series_record(ds)


def _series_record(ds: Dataset) -> SeriesRecord:
    return SeriesRecord(
        study_uid=_text(ds, "StudyInstanceUID"), series_uid=_text(ds, "SeriesInstanceUID"),
        modality=_text(ds, "Modality"), series_number=_int(ds, "SeriesNumber"),
        description=_text(ds, "SeriesDescription"), body_part=_text(ds, "BodyPartExamined"),
        n_instances=_int(ds, "NumberOfSeriesRelatedInstances"),
    )


def instance_ref(ds: Dataset) -> InstanceRef:
    return InstanceRef(series_uid=_text(ds, "SeriesInstanceUID"), sop_uid=_text(ds, "SOPInstanceUID"),
                       sop_class_uid=_text(ds, "SOPClassUID"))


def qido_params(identifier: Dataset) -> tuple[dict[str, str], list[str]]:
    """(search filters, fields to include) of a C-FIND identifier, for QIDO-RS."""
    filters, fields = {}, []
    for elem in identifier:
        if elem.keyword in ("QueryRetrieveLevel", "SpecificCharacterSet"):
            continue
        value = "" if elem.value is None else str(elem.value)
        if value:
            filters[elem.keyword] = value
        else:
            fields.append(elem.keyword)
    return filters, fields
