"""`open_client`: the one way to get a client for a configured PACS, DIMSE or DICOMweb alike.

Why a protocol and a factory: the PACS dialog and the CLI hold a ``PacsServer`` from the
settings and must not branch on its kind; both clients have the same methods, arguments and
results, and raise the same errors.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from .records import (Cancel, EchoResult, InstanceRef, Progress, RetrieveResult, SeriesRecord, StoreResult, StudyQuery,
                      StudyRecord)
from .server import PacsServer, PacsSettings


class PacsClient(Protocol):
    server: PacsServer
    settings: PacsSettings

    def echo(self, *, progress: Progress | None = None, cancel: Cancel | None = None) -> EchoResult: ...

    def find_studies(self, query: StudyQuery | None = None, *, progress: Progress | None = None,
                     cancel: Cancel | None = None) -> list[StudyRecord]: ...

    def find_series(self, query: StudyQuery | None = None, *, progress: Progress | None = None,
                    cancel: Cancel | None = None) -> list[SeriesRecord]: ...

    def list_instances(self, study_uid: str, series_uid: str | None = None, *, progress: Progress | None = None,
                       cancel: Cancel | None = None) -> list[InstanceRef]: ...

    def retrieve(self, study_uid: str, series_uid: str | None = None, *, method: str = "get",
                 dest: str | Path | None = None, progress: Progress | None = None,
                 cancel: Cancel | None = None) -> RetrieveResult: ...

    def store(self, paths: Iterable[str | Path], *, progress: Progress | None = None,
              cancel: Cancel | None = None) -> StoreResult: ...


def open_client(server: PacsServer | str, settings: PacsSettings | None = None, *, session: Any = None) -> PacsClient:
    """A :class:`DicomWebClient` for a URL, else a :class:`DimseClient` (``server`` may be the
    address text, parsed by :meth:`PacsServer.parse`). ``session``: a ``requests.Session`` with
    the hospital's authentication, for DICOMweb. Nothing is sent until a call."""
    if isinstance(server, str):
        server = PacsServer.parse(server)
    if server.is_dicomweb:
        from .dicomweb import DicomWebClient

        return DicomWebClient(server, settings, session=session)
    from .dimse import DimseClient

    return DimseClient(server, settings)
