"""The classic DICOM network services over pynetdicom: C-ECHO, C-FIND, C-GET, C-MOVE, C-STORE.

Why the retrieval lists the instances first: an IMAGE-level C-FIND tells what the PACS holds,
so the progress bar knows its total, a partial transfer can say which instances are missing,
and C-GET can propose exactly the storage SOP classes the study needs, each compressed
transfer syntax in its own context, so files arrive as the PACS stores them (no transcoding).
C-GET is the default (one association, no port to open on our side); C-MOVE, for servers that
only move, sends the images to a storage SCP we run for the duration of the call.

Every call runs under a :class:`Supervisor`: ``progress`` and ``cancel`` are called only in the
calling thread, and the total time-out holds even while a server stays silent.

Length: about 400 lines because it is one client class; association set-up and failure
classification live in ``dimse_assoc``, the C-MOVE receiver in ``move_scp``.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.errors import InvalidDicomError

from . import identifiers as ids
from .cache import StudyCache, default_cache_dir
from .dimse_assoc import (UNCOMPRESSED, associate, is_pending, lost_error, release, request_id, status_of,
                          storage_contexts)
from .errors import (PacsCacheError, PacsError, PacsInputError, PacsMoveDestinationError, PacsNotFoundError, PacsRequestFailedError,
                     PacsServiceNotSupportedError)
from .move_scp import StorageSCP
from .records import (Cancel, EchoResult, InstanceRef, Progress, RetrieveResult, SeriesRecord, StoreResult, StudyQuery,
                      StudyRecord, check_uid)
from .server import PacsServer, PacsSettings
from .supervise import Supervisor

log = logging.getLogger(__name__)

VERIFICATION = "1.2.840.10008.1.1"
FIND_MODEL = "1.2.840.10008.5.1.4.1.2.2.1"  # Study Root Query/Retrieve - FIND
MOVE_MODEL = "1.2.840.10008.5.1.4.1.2.2.2"
GET_MODEL = "1.2.840.10008.5.1.4.1.2.2.3"
_WARNING_STORE = (0xB000, 0xB006, 0xB007)
_CANCELLED = 0xFE00
_MOVE_DESTINATION_UNKNOWN = 0xA801
#: Proposed for C-GET when the PACS did not list the study's SOP classes: the common image
#: classes plus reports, key objects and presentation states.
COMMON_STORAGE = (
    "1.2.840.10008.5.1.4.1.1.1", "1.2.840.10008.5.1.4.1.1.1.1", "1.2.840.10008.5.1.4.1.1.1.1.1",
    "1.2.840.10008.5.1.4.1.1.1.2", "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.2.1",
    "1.2.840.10008.5.1.4.1.1.4", "1.2.840.10008.5.1.4.1.1.4.1", "1.2.840.10008.5.1.4.1.1.6.1",
    "1.2.840.10008.5.1.4.1.1.3.1", "1.2.840.10008.5.1.4.1.1.7", "1.2.840.10008.5.1.4.1.1.7.2",
    "1.2.840.10008.5.1.4.1.1.7.4", "1.2.840.10008.5.1.4.1.1.20", "1.2.840.10008.5.1.4.1.1.128",
    "1.2.840.10008.5.1.4.1.1.12.1", "1.2.840.10008.5.1.4.1.1.12.2", "1.2.840.10008.5.1.4.1.1.77.1.4",
    "1.2.840.10008.5.1.4.1.1.88.11", "1.2.840.10008.5.1.4.1.1.88.22", "1.2.840.10008.5.1.4.1.1.88.33",
    "1.2.840.10008.5.1.4.1.1.88.59", "1.2.840.10008.5.1.4.1.1.11.1",
)


@dataclass
class _Outcome:
    """The final C-GET / C-MOVE response: status, failed sub-operations, what the PACS said."""

    status: int
    failed: int = 0
    comment: str = ""
    total: int | None = None  # sub-operations the PACS announced (remaining + done), when it did


class DimseClient:
    """One PACS reached over DIMSE. Cheap to create; each call opens and closes its associations."""

    def __init__(self, server: PacsServer, settings: PacsSettings | None = None) -> None:
        if server.is_dicomweb:
            raise PacsInputError("This PACS is a DICOMweb address; use DicomWebClient (or open_client) for it.")
        self.server = server.checked()
        self.settings = (settings or PacsSettings()).checked()

    # ------------------------------------------------------------------ public calls

    def echo(self, *, progress: Progress | None = None, cancel: Cancel | None = None) -> EchoResult:
        """C-ECHO: is the PACS there, and does it accept our AE title? Raises the :class:`PacsError`
        whose sentence names the setting to fix."""

        def work(sup: Supervisor) -> EchoResult:
            started = time.monotonic()
            assoc = associate(self.server, self.settings, [(VERIFICATION, UNCOMPRESSED)], sup=sup)
            try:
                code = status_of(assoc.send_c_echo())
            finally:
                release(assoc)
            if code is None:
                raise lost_error(self.server, self.settings, started)
            if code != 0:
                raise PacsRequestFailedError(f"The PACS answered the test with an error (status 0x{code:04X}).",
                                             status=code)
            return EchoResult(str(self.server), self.server.ae_title, (time.monotonic() - started) * 1000)

        return self._run(work, progress, cancel)

    def find_studies(self, query: StudyQuery | None = None, *, progress: Progress | None = None,
                     cancel: Cancel | None = None) -> list[StudyRecord]:
        """Studies matching *query* (C-FIND, Study Root, STUDY level), in the PACS's order."""
        query = (query or StudyQuery()).checked()

        def work(sup: Supervisor) -> list[StudyRecord]:
            assoc = associate(self.server, self.settings, [(FIND_MODEL, UNCOMPRESSED)], sup=sup)
            try:
                return [ids.study_record(d) for d in self._find(assoc, ids.study_identifier(query), sup)]
            finally:
                release(assoc)

        studies = self._run(work, progress, cancel)
        log.info("C-FIND: %d stud%s", len(studies), "y" if len(studies) == 1 else "ies")
        return studies

    def find_series(self, query: StudyQuery | None = None, *, progress: Progress | None = None,
                    cancel: Cancel | None = None) -> list[SeriesRecord]:
        """Series of the studies matching *query*; ``modality`` filters the series. With
        ``study_uid`` one SERIES-level query, otherwise the matching studies first (one association)."""
        query = (query or StudyQuery()).checked()

        def work(sup: Supervisor) -> list[SeriesRecord]:
            assoc = associate(self.server, self.settings, [(FIND_MODEL, UNCOMPRESSED)], sup=sup)
            try:
                if query.study_uid:
                    study_uids = [query.study_uid]
                else:
                    study_query = StudyQuery(query.patient_id, query.patient_name, query.date_from, query.date_to,
                                             query.modality, query.accession_number)
                    study_uids = [ids.study_record(d).study_uid
                                  for d in self._find(assoc, ids.study_identifier(study_query), sup, report=False)]
                out: list[SeriesRecord] = []
                for uid in study_uids:
                    found = self._find(assoc, ids.series_identifier(uid, query.modality), sup, done=len(out))
                    out.extend(ids.series_record(d) for d in found)
                return out
            finally:
                release(assoc)

        series = self._run(work, progress, cancel)
        log.info("C-FIND: %d series", len(series))
        return series

    def list_instances(self, study_uid: str, series_uid: str | None = None, *, progress: Progress | None = None,
                       cancel: Cancel | None = None) -> list[InstanceRef]:
        """The instances of a study or series (IMAGE-level C-FIND)."""
        self._check_uids(study_uid, series_uid)
        return self._run(lambda sup: self._list(sup, study_uid, series_uid) or [], progress, cancel)

    def retrieve(self, study_uid: str, series_uid: str | None = None, *, method: str = "get",
                 dest: str | Path | None = None, progress: Progress | None = None,
                 cancel: Cancel | None = None) -> RetrieveResult:
        """Fetch a study (or one series) into ``dest`` (default: the per-user cache), as
        ``<dest>/<study_uid>/<series_uid>/<sop_uid>.dcm``; then ``studies.open_study(result.folder)``.

        ``method``: "get" (C-GET) or "move" (C-MOVE to our storage SCP on ``settings.move_port``).
        ``progress(received, expected)`` after every instance. Returns a result that may be
        partial (see ``complete``, ``missing``, ``problem``) when the PACS sent only some
        instances; raises :class:`PacsError` when nothing arrived. A cancel or a time-out raises
        :class:`PacsCancelledError` / :class:`PacsTimeoutError` whose ``partial`` holds what
        was written (whole files only).
        """
        self._check_uids(study_uid, series_uid)
        if method not in ("get", "move"):
            raise ValueError(f"method must be 'get' or 'move', not {method!r}")
        cache = StudyCache(Path(dest) if dest is not None else (self.settings.cache_dir or default_cache_dir()),
                           study_uid)
        listing: list[InstanceRef] | None = None

        def work(sup: Supervisor) -> RetrieveResult:
            nonlocal listing
            listing = self._list(sup, study_uid, series_uid)
            if listing is not None and not listing:
                what = "series" if series_uid else "study"
                raise PacsNotFoundError(f"The PACS holds no {what} with this UID; search again, it may have moved.")
            expected = len(listing) if listing is not None else None
            sup.report(0, expected)
            handler = self._store_handler(cache, sup, expected)
            identifier = ids.retrieve_identifier(study_uid, series_uid)
            if method == "get":
                outcome = self._get(sup, identifier, listing, handler)
            else:
                outcome = self._move(sup, identifier, handler, cache)
            return self._result(cache, study_uid, series_uid, listing, outcome)

        try:
            result = self._run(work, progress, cancel)
        except PacsError as exc:
            if cache.received and exc.partial is None:
                exc.partial = self._result(cache, study_uid, series_uid, listing, None)
            raise
        log.info("retrieved %d of %s instance(s) by C-%s", result.received,
                 "?" if result.expected is None else result.expected, method.upper())
        return result

    def store(self, paths: Iterable[str | Path], *, progress: Progress | None = None,
              cancel: Cancel | None = None) -> StoreResult:
        """C-STORE each DICOM file (e.g. our Secondary Capture) as it is; the PACS files it under the
        study named in its header. Files the PACS refuses are listed in ``failed``."""
        files = [Path(p) for p in paths]

        def work(sup: Supervisor) -> StoreResult:
            failed: dict[str, str] = {}
            metas = []
            for path in files:
                try:
                    ds = dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID", "SOPInstanceUID"])
                    metas.append((path, str(ds.SOPClassUID), str(ds.SOPInstanceUID),
                                  str(ds.file_meta.TransferSyntaxUID)))
                except (InvalidDicomError, AttributeError, OSError, ValueError, TypeError) as exc:
                    log.info("a file was not sent: %s", type(exc).__name__)
                    failed[str(path)] = "This file is not a DICOM file MedKD can send."
            if not metas:
                return StoreResult(failed=failed)
            contexts: dict[tuple[str, str], list[str]] = {}
            for _, sop_class, _, ts in metas:
                contexts.setdefault((sop_class, ts), list(UNCOMPRESSED) if ts in UNCOMPRESSED else [ts])
            assoc = associate(self.server, self.settings, [(c, t) for (c, _), t in contexts.items()], sup=sup)
            stored, warnings = [], []
            try:
                for i, (path, _, sop_uid, _) in enumerate(metas):
                    started = time.monotonic()
                    try:
                        code = status_of(assoc.send_c_store(path))
                    except ValueError:  # no accepted context for this SOP class / transfer syntax
                        log.info("a file was not sent: no accepted presentation context")
                        failed[str(path)] = "The PACS does not accept this kind of file (or its compression)."
                        continue
                    if code is None:
                        if sup.stopped.is_set():
                            break
                        raise lost_error(self.server, self.settings, started)
                    if code == 0 or code in _WARNING_STORE:
                        stored.append(sop_uid)
                        if code:
                            warnings.append(f"The PACS stored {path.name} with a warning (status 0x{code:04X}).")
                    else:
                        failed[str(path)] = f"The PACS did not accept the file (status 0x{code:04X})."
                    if not sup.report(i + 1, len(files)):
                        break
            finally:
                release(assoc)
            return StoreResult(tuple(stored), failed, tuple(warnings))

        result = self._run(work, progress, cancel)
        log.info("C-STORE: %d stored, %d failed", len(result.stored), len(result.failed))
        return result

    # ------------------------------------------------------------------ internals

    def _run(self, work: Callable[[Supervisor], object], progress: Progress | None, cancel: Cancel | None):
        sup = Supervisor(cancel=cancel, progress=progress, total_timeout=self.settings.total_timeout,
                         idle_timeout=self.settings.idle_timeout)
        return sup.run(lambda: work(sup))

    @staticmethod
    def _check_uids(study_uid: str, series_uid: str | None) -> None:
        check_uid(study_uid, "StudyInstanceUID")
        if series_uid is not None:
            check_uid(series_uid, "SeriesInstanceUID")

    def _find(self, assoc, identifier, sup: Supervisor, *, report: bool = True, done: int = 0) -> list:
        found: list = []
        last = time.monotonic()
        msg_id = request_id(assoc, FIND_MODEL, sup)
        for status, ident in assoc.send_c_find(identifier, FIND_MODEL, msg_id=msg_id):
            code = status_of(status)
            if code is None:
                if sup.stopped.is_set():
                    return found
                raise lost_error(self.server, self.settings, last)
            last = time.monotonic()
            if is_pending(code):
                if ident is not None:
                    found.append(ident)
                    if report and not sup.report(done + len(found), None):
                        return found
                continue
            if code in (0, _CANCELLED):
                return found
            raise PacsRequestFailedError(
                f"The PACS could not carry out the search (status 0x{code:04X}); try other filters, or ask its "
                "administrator.", status=code, detail=str(status.get("ErrorComment", "") or ""))
        return found

    def _list(self, sup: Supervisor, study_uid: str, series_uid: str | None) -> list[InstanceRef] | None:
        """The instances the PACS lists, or None when it refuses IMAGE-level queries."""
        assoc = associate(self.server, self.settings, [(FIND_MODEL, UNCOMPRESSED)], sup=sup)
        try:
            found = self._find(assoc, ids.instance_identifier(study_uid, series_uid), sup, report=False)
        except PacsRequestFailedError as exc:
            log.info("IMAGE-level C-FIND refused (status 0x%04X); retrieving without a listing", exc.status or 0)
            return None
        finally:
            release(assoc)
        refs = [ids.instance_ref(d) for d in found]
        return [r for r in refs if r.sop_uid and (series_uid is None or r.series_uid == series_uid)]

    def _store_handler(self, cache: StudyCache, sup: Supervisor, expected: int | None):
        """C-STORE sub-operations (C-GET's, or our SCP's during a C-MOVE): write, then report."""

        def handle(event) -> int:
            if not sup.begin_write():
                return 0xA700  # refused: out of resources (we are stopping)
            try:
                ds = event.dataset
                ds.file_meta = event.file_meta
                cache.add(ds, event.encoded_dataset(include_meta=True))
            except PacsCacheError as exc:
                sup.fail(exc)
                return 0xA700
            except Exception as exc:  # a dataset pynetdicom cannot decode
                log.info("received instance could not be decoded: %s", type(exc).__name__)
                return 0xC210
            finally:
                sup.end_write()
            sup.report(cache.received, expected)
            return 0x0000

        return handle

    def _responses(self, responses, sup: Supervisor) -> _Outcome:
        """The final C-GET / C-MOVE response (pending ones only carry counts)."""
        last = time.monotonic()
        total: int | None = None
        for status, ident in responses:
            code = status_of(status)
            if code is None:
                if sup.stopped.is_set():
                    return _Outcome(-1, total=total)
                raise lost_error(self.server, self.settings, last)
            last = time.monotonic()
            counts = [int(status.get(f"NumberOf{k}Suboperations", 0) or 0)
                      for k in ("Remaining", "Completed", "Failed", "Warning")]
            if any(counts):
                total = max(total or 0, sum(counts))
            if is_pending(code):
                continue
            return _Outcome(code, counts[2], str(status.get("ErrorComment", "") or ""), total)
        return _Outcome(-1, total=total)

    def _get(self, sup: Supervisor, identifier, listing: list[InstanceRef] | None, handler) -> _Outcome:
        from pynetdicom import build_role, evt

        counts: dict[str, int] = {}
        for ref in listing or ():
            if ref.sop_class_uid:
                counts[ref.sop_class_uid] = counts.get(ref.sop_class_uid, 0) + 1
        classes = sorted(counts, key=lambda c: -counts[c]) or list(COMMON_STORAGE)
        contexts = storage_contexts(classes)
        roles = [build_role(c, scp_role=True) for c in dict.fromkeys(c for c, _ in contexts)]
        try:
            assoc = associate(self.server, self.settings, [(GET_MODEL, UNCOMPRESSED), *contexts], sup=sup,
                              ext_neg=roles, handlers=[(evt.EVT_C_STORE, handler)])
        except PacsServiceNotSupportedError:
            raise PacsServiceNotSupportedError(
                "The PACS does not offer retrieval by C-GET to MedKD; choose C-MOVE in the settings.") from None
        try:
            if not any(cx.abstract_syntax == GET_MODEL for cx in assoc.accepted_contexts):
                raise PacsServiceNotSupportedError(
                    "The PACS does not offer retrieval by C-GET to MedKD; choose C-MOVE in the settings.")
            return self._responses(assoc.send_c_get(identifier, GET_MODEL, msg_id=request_id(assoc, GET_MODEL, sup)),
                                   sup)
        finally:
            release(assoc)

    def _move(self, sup: Supervisor, identifier, handler, cache: StudyCache) -> _Outcome:
        scp = StorageSCP(self.settings, handler)
        with scp:
            assoc = associate(self.server, self.settings, [(MOVE_MODEL, UNCOMPRESSED)], sup=sup)
            try:
                msg_id = request_id(assoc, MOVE_MODEL, sup)
                outcome = self._responses(assoc.send_c_move(identifier, self.settings.ae_title, MOVE_MODEL,
                                                             msg_id=msg_id), sup)
            finally:
                release(assoc)
        failure = outcome.status not in (0, -1) and outcome.status not in _WARNING_STORE
        if outcome.status == _MOVE_DESTINATION_UNKNOWN or (failure and not cache.received and not scp.connected.is_set()):
            raise PacsMoveDestinationError(
                f"The PACS could not send the images to MedKD's AE title '{self.settings.ae_title}'; ask its "
                f"administrator to register that AE title with this computer's address and port "
                f"{self.settings.move_port}, or use C-GET.", detail=f"C-MOVE status 0x{outcome.status:04X} "
                f"{outcome.comment}".strip())
        return outcome

    def _result(self, cache: StudyCache, study_uid: str, series_uid: str | None, listing: list[InstanceRef] | None,
                outcome: _Outcome | None) -> RetrieveResult:
        missing = tuple(r.sop_uid for r in listing if r.sop_uid not in cache.received_uids) if listing else ()
        expected = len(listing) if listing is not None else (outcome.total if outcome is not None else None)
        status = outcome.status if outcome is not None else None
        failed = outcome.failed if outcome is not None else 0
        bad = status is not None and status not in (0, -1, _CANCELLED)
        if outcome is not None and bad and not cache.received:
            raise PacsRequestFailedError(
                f"The PACS could not send the {'series' if series_uid else 'study'} (status 0x{status:04X}); try "
                "again, or ask its administrator.", status=status, detail=outcome.comment)
        problem = ""
        if missing or bad or failed or (expected is not None and cache.received < expected):
            of = f" of {expected}" if expected is not None else ""
            why = f" (status 0x{status:04X})" if bad else ""
            problem = (f"Only {cache.received}{of} instances arrived because the PACS could not send the others{why}; "
                       "open what arrived or retrieve again.")
        return RetrieveResult(study_uid=study_uid, series_uid=series_uid, folder=cache.folder, expected=expected,
                              images=tuple(cache.images), non_images=tuple(cache.non_images), missing=missing,
                              failed=failed, problem=problem)
