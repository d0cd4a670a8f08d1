"""Studies from the hospital's PACS: query, retrieve into a per-user cache, store our results back.

Why no Qt and callables for progress and cancel: the PACS dialog runs every call in a worker
thread and the CLI runs them in the foreground; both pass ``progress(done, total)`` and
``cancel()`` callables, which are called only in the calling thread (see ``supervise``).

Entry point: ``open_client(server, settings)`` gives a :class:`DimseClient` (C-ECHO/FIND/GET/
MOVE/STORE over pynetdicom) or a :class:`DicomWebClient` (QIDO-RS/WADO-RS/STOW-RS over
dicomweb-client) with the same methods: ``echo``, ``find_studies``, ``find_series``,
``list_instances``, ``retrieve``, ``store``. Every failure is a :class:`PacsError` subclass whose
``str()`` names the likely fix. Clients load pynetdicom / dicomweb-client on first use (PEP 562),
so importing this package stays cheap for the window.
"""
from __future__ import annotations

from importlib import import_module
from typing import Any

from .errors import (PacsAbortedError, PacsAssociationRejectedError, PacsAuthError, PacsCacheError,
                     PacsCalledAETitleError, PacsCallingAETitleError, PacsCancelledError, PacsConnectionRefusedError,
                     PacsError, PacsHostNotFoundError, PacsInputError, PacsLocalPortError, PacsMoveDestinationError,
                     PacsNotFoundError, PacsRequestFailedError, PacsServiceNotSupportedError, PacsTimeoutError)
from .records import (Cancel, EchoResult, InstanceRef, Progress, RetrieveResult, SeriesRecord, StoreResult, StudyQuery,
                      StudyRecord, parse_date_range)
from .server import DEFAULT_AE_TITLE, DEFAULT_MOVE_PORT, PacsServer, PacsSettings

_LAZY = {
    "DimseClient": ".dimse",
    "DicomWebClient": ".dicomweb",
    "open_client": ".client",
    "PacsClient": ".client",
    "default_cache_dir": ".cache",
    "NON_IMAGE_DIR": ".cache",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(module, __name__), name)


__all__ = [
    "DEFAULT_AE_TITLE", "DEFAULT_MOVE_PORT", "NON_IMAGE_DIR",
    "Cancel", "Progress",
    "DicomWebClient", "DimseClient", "PacsClient", "open_client", "default_cache_dir",
    "EchoResult", "InstanceRef", "RetrieveResult", "SeriesRecord", "StoreResult", "StudyQuery", "StudyRecord",
    "PacsServer", "PacsSettings", "parse_date_range",
    "PacsError", "PacsAbortedError", "PacsAssociationRejectedError", "PacsAuthError", "PacsCacheError",
    "PacsCalledAETitleError", "PacsCallingAETitleError", "PacsCancelledError", "PacsConnectionRefusedError",
    "PacsHostNotFoundError", "PacsInputError", "PacsLocalPortError", "PacsMoveDestinationError", "PacsNotFoundError",
    "PacsRequestFailedError", "PacsServiceNotSupportedError", "PacsTimeoutError",
]
