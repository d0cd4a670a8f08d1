"""The same calls over DICOMweb (QIDO-RS search, WADO-RS retrieve, STOW-RS store) with dicomweb-client.

Why the same surface as :class:`DimseClient`: a hospital exposes its PACS either way, and the
dialog and the CLI should not care which. Searches reuse the C-FIND identifiers as QIDO
parameters, so both give the same records. Retrieval asks for ``transfer-syntax=*`` (files as
stored, no transcoding) and streams the multipart answer, writing each instance as it arrives.
HTTP has no association to abort: a cancel or the total time-out closes the session, which
ends the read in progress.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from . import identifiers as ids
from .cache import StudyCache, default_cache_dir
from .errors import (PacsAbortedError, PacsAuthError, PacsCacheError, PacsConnectionRefusedError, PacsError, PacsHostNotFoundError,
                     PacsInputError, PacsNotFoundError, PacsRequestFailedError, PacsTimeoutError)
from .records import (Cancel, EchoResult, InstanceRef, Progress, RetrieveResult, SeriesRecord, StoreResult, StudyQuery,
                      StudyRecord, check_uid)
from .server import PacsServer, PacsSettings
from .supervise import Supervisor

log = logging.getLogger(__name__)
# Their DEBUG lines carry request URLs, and a QIDO URL carries the patient name and ID filters.
logging.getLogger("dicomweb_client").setLevel(logging.INFO)
logging.getLogger("urllib3.connectionpool").setLevel(logging.INFO)

AS_STORED = (("application/dicom", "*"),)
# No ``get_remaining`` paging in searches: some servers ignore ``offset`` and would answer the
# same page for ever. A server that truncates says so in a Warning header (logged).


class DicomWebClient:
    """One PACS reached over DICOMweb at ``server.url`` (the service root, e.g. ``…/dicom-web``).
    ``session``: a ``requests.Session`` carrying the hospital's authentication, if any."""

    def __init__(self, server: PacsServer, settings: PacsSettings | None = None, *, session=None) -> None:
        if not server.is_dicomweb:
            raise PacsInputError("This PACS is not a DICOMweb address; use DimseClient for AET@HOST:PORT.")
        self.server = server
        self.settings = (settings or PacsSettings()).checked()
        self._session = session

    # ------------------------------------------------------------------ public calls

    def echo(self, *, progress: Progress | None = None, cancel: Cancel | None = None) -> EchoResult:
        """One QIDO-RS search for a single study: is the service there and does it answer?"""

        def work(sup: Supervisor, client) -> EchoResult:
            started = time.monotonic()
            client.search_for_studies(limit=1, fields=["StudyInstanceUID"])
            return EchoResult(str(self.server), "", (time.monotonic() - started) * 1000)

        return self._run(work, progress, cancel)

    def find_studies(self, query: StudyQuery | None = None, *, progress: Progress | None = None,
                     cancel: Cancel | None = None) -> list[StudyRecord]:
        query = (query or StudyQuery()).checked()

        def work(sup: Supervisor, client) -> list[StudyRecord]:
            filters, fields = ids.qido_params(ids.study_identifier(query))
            found = client.search_for_studies(search_filters=filters, fields=fields)
            return [ids.study_record(ids.from_json(d)) for d in found]

        studies = self._run(work, progress, cancel)
        log.info("QIDO-RS: %d stud%s", len(studies), "y" if len(studies) == 1 else "ies")
        return studies

    def find_series(self, query: StudyQuery | None = None, *, progress: Progress | None = None,
                    cancel: Cancel | None = None) -> list[SeriesRecord]:
        query = (query or StudyQuery()).checked()

        def work(sup: Supervisor, client) -> list[SeriesRecord]:
            if query.study_uid:
                study_uids = [query.study_uid]
            else:
                sq = StudyQuery(query.patient_id, query.patient_name, query.date_from, query.date_to, query.modality,
                                query.accession_number)
                filters, fields = ids.qido_params(ids.study_identifier(sq))
                found = client.search_for_studies(search_filters=filters, fields=fields)
                study_uids = [ids.study_record(ids.from_json(d)).study_uid for d in found]
            out: list[SeriesRecord] = []
            for uid in study_uids:
                filters, fields = ids.qido_params(ids.series_identifier(uid, query.modality))
                filters.pop("StudyInstanceUID", None)
                found = client.search_for_series(study_instance_uid=uid, search_filters=filters, fields=fields)
                out.extend(ids.series_record(_with_study(ids.from_json(d), uid)) for d in found)
                if not sup.report(len(out), None):
                    break
            return out

        return self._run(work, progress, cancel)

    def list_instances(self, study_uid: str, series_uid: str | None = None, *, progress: Progress | None = None,
                       cancel: Cancel | None = None) -> list[InstanceRef]:
        _check_uids(study_uid, series_uid)
        return self._run(lambda sup, client: self._list(client, study_uid, series_uid), progress, cancel)

    def retrieve(self, study_uid: str, series_uid: str | None = None, *, method: str = "get",
                 dest: str | Path | None = None, progress: Progress | None = None,
                 cancel: Cancel | None = None) -> RetrieveResult:
        """WADO-RS retrieval into the cache, with :meth:`DimseClient.retrieve`'s layout and result.
        ``method`` must be "get" (there is no C-MOVE over the web)."""
        _check_uids(study_uid, series_uid)
        if method != "get":
            raise PacsInputError("A DICOMweb PACS sends studies directly; C-MOVE applies to DIMSE servers only.")
        cache = StudyCache(Path(dest) if dest is not None else (self.settings.cache_dir or default_cache_dir()),
                           study_uid)
        listing: list[InstanceRef] = []

        def work(sup: Supervisor, client) -> RetrieveResult:
            listing.extend(self._list(client, study_uid, series_uid))
            if not listing:
                raise PacsNotFoundError(f"The PACS holds no {'series' if series_uid else 'study'} with this UID; "
                                        "search again, it may have moved.")
            sup.report(0, len(listing))
            if series_uid:
                stream = client.iter_series(study_uid, series_uid, media_types=AS_STORED)
            else:
                stream = client.iter_study(study_uid, media_types=AS_STORED)
            for ds in stream:
                if not sup.begin_write():
                    break
                try:
                    cache.add(ds)
                except PacsCacheError as exc:
                    sup.fail(exc)
                    break
                finally:
                    sup.end_write()
                if not sup.report(cache.received, len(listing)):
                    break
            return _result(cache, study_uid, series_uid, listing)

        try:
            return self._run(work, progress, cancel)
        except PacsError as exc:
            if cache.received and exc.partial is None:
                exc.partial = _result(cache, study_uid, series_uid, listing)
            raise

    def store(self, paths: Iterable[str | Path], *, progress: Progress | None = None,
              cancel: Cancel | None = None) -> StoreResult:
        """STOW-RS, one request per file (so one refused file does not sink the others)."""
        files = [Path(p) for p in paths]

        def work(sup: Supervisor, client) -> StoreResult:
            stored, failed, warnings = [], {}, []
            for i, path in enumerate(files):
                try:
                    ds = dcmread(path)
                    sop_uid = str(ds.SOPInstanceUID)
                except (InvalidDicomError, AttributeError, OSError, ValueError, TypeError) as exc:
                    log.info("a file was not sent: %s", type(exc).__name__)
                    failed[str(path)] = "This file is not a DICOM file MedKD can send."
                    continue
                try:
                    answer = client.store_instances([ds])
                except Exception as exc:  # an HTTP error for this file: the others may still go
                    error = _http_error(exc, self.server, self.settings)
                    if not isinstance(error, PacsRequestFailedError) or isinstance(error, PacsAuthError):
                        raise error from None
                    failed[str(path)] = f"The PACS did not accept the file (HTTP {error.status})."
                    continue
                refused = [str(item.get("ReferencedSOPInstanceUID", "")) for item in answer.get("FailedSOPSequence", [])]
                if sop_uid in refused:
                    failed[str(path)] = "The PACS did not accept the file."
                else:
                    stored.append(sop_uid)
                    if any("WarningReason" in item for item in answer.get("ReferencedSOPSequence", [])):
                        warnings.append(f"The PACS stored {path.name} with a warning.")
                if not sup.report(i + 1, len(files)):
                    break
            return StoreResult(tuple(stored), failed, tuple(warnings))

        return self._run(work, progress, cancel)

    # ------------------------------------------------------------------ internals

    def _client(self, sup: Supervisor):
        import requests
        from dicomweb_client.api import DICOMwebClient

        session = self._session or requests.Session()
        timeout = sup.remaining()
        connect = self.settings.idle_timeout if timeout is None else max(0.5, min(self.settings.idle_timeout, timeout))
        client = DICOMwebClient(self.server.url, session=session, timeout=(connect, self.settings.idle_timeout))
        client.set_http_retry_params(retry=False)  # bounded time: one try, the user retries
        sup.on_stop(session.close)
        return client

    def _run(self, work, progress: Progress | None, cancel: Cancel | None):
        sup = Supervisor(cancel=cancel, progress=progress, total_timeout=self.settings.total_timeout,
                         idle_timeout=self.settings.idle_timeout)

        def guarded():
            try:
                return work(sup, self._client(sup))
            except PacsError:
                raise
            except Exception as exc:  # requests / dicomweb-client errors, as the PacsError that says why
                if sup.stopped.is_set():
                    return None  # the supervisor raises the cancel / time-out
                raise _http_error(exc, self.server, self.settings) from None

        return sup.run(guarded)

    @staticmethod
    def _list(client, study_uid: str, series_uid: str | None) -> list[InstanceRef]:
        found = client.search_for_instances(study_instance_uid=study_uid, series_instance_uid=series_uid,
                                            fields=["SOPClassUID", "SeriesInstanceUID"])
        refs = [ids.instance_ref(ids.from_json(d)) for d in found]
        return [r for r in refs if r.sop_uid]


def _check_uids(study_uid: str, series_uid: str | None) -> None:
    check_uid(study_uid, "StudyInstanceUID")
    if series_uid is not None:
        check_uid(series_uid, "SeriesInstanceUID")


def _with_study(ds: Dataset, study_uid: str) -> Dataset:
    if not ds.get("StudyInstanceUID"):
        ds.StudyInstanceUID = study_uid
    return ds


def _result(cache: StudyCache, study_uid: str, series_uid: str | None, listing: list[InstanceRef]) -> RetrieveResult:
    missing = tuple(r.sop_uid for r in listing if r.sop_uid not in cache.received_uids)
    problem = ""
    if missing:
        problem = (f"Only {cache.received} of {len(listing)} instances arrived because the PACS did not send the "
                   "others; open what arrived or retrieve again.")
    return RetrieveResult(study_uid=study_uid, series_uid=series_uid, folder=cache.folder, expected=len(listing),
                          images=tuple(cache.images), non_images=tuple(cache.non_images), missing=missing,
                          problem=problem)


def _http_error(exc: Exception, server: PacsServer, settings: PacsSettings) -> PacsError:
    """A requests / dicomweb-client exception as the PacsError that names the fix."""
    import requests

    url = server.url
    detail = f"{type(exc).__name__}"
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        code = exc.response.status_code
        detail = f"HTTP {code}"
        if code in (401, 403):
            return PacsAuthError(status=code, detail=detail)
        if code == 404:
            return PacsNotFoundError(f"The PACS's web service answered 'not found' at {url}; check the DICOMweb "
                                     "address (it often ends in /dicom-web).", detail=detail)
        return PacsRequestFailedError(f"The PACS's web service could not carry out the request (HTTP {code}); try "
                                      "again, or ask its administrator.", status=code, detail=detail)
    if isinstance(exc, requests.ConnectTimeout):
        return PacsTimeoutError(f"The PACS at {url} did not answer within {settings.idle_timeout:g} s; check the "
                                "address, the network, or whether the PACS is down.", which="connect",
                                seconds=settings.idle_timeout, detail=detail)
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return PacsAbortedError(f"The PACS at {url} broke off the transfer; try again, and tell its administrator if "
                                "it happens again.", detail=detail)
    if isinstance(exc, requests.ReadTimeout):
        return PacsTimeoutError(f"The PACS at {url} stopped answering for {settings.idle_timeout:g} s; try again, or "
                                "raise the time-out in the settings.", which="idle", seconds=settings.idle_timeout,
                                detail=detail)
    if isinstance(exc, requests.ConnectionError):
        text = str(exc)
        if "Name or service not known" in text or "NameResolution" in text or "getaddrinfo" in text:
            return PacsHostNotFoundError(detail=detail)
        if "refused" in text.lower():
            return PacsConnectionRefusedError(f"The PACS at {url} refused the connection; check the port in the "
                                              "address and that its web service is running.", detail=detail)
        return PacsTimeoutError(f"The PACS at {url} cannot be reached from this computer; check the network and the "
                                "address.", which="connect", seconds=settings.idle_timeout, detail=detail)
    if isinstance(exc, ValueError):  # an answer dicomweb-client could not parse
        return PacsRequestFailedError(f"The server at {url} did not answer like a DICOMweb service; check the "
                                      "address (it often ends in /dicom-web).", detail=detail)
    return PacsRequestFailedError(detail=detail)
