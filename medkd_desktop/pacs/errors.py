"""Typed PACS errors: what went wrong and the likely fix, in one sentence a clinician can pass on.

Why one class per failure rather than one class with a code: the window shows each failure next
to the setting that fixes it (the server's AE title, its port, our AE title, the move port), and
``except PacsCalledAETitleError`` reads better than comparing strings. ``reason`` is the same
thing as a short, stable word for code that prefers it (the settings dialog, JSON output).
Messages name the server's address and AE titles (configuration, not patient data) and never a
patient name, ID or birth date; the library's own text goes to ``detail``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import MedKDError

if TYPE_CHECKING:
    from .records import RetrieveResult


class PacsError(MedKDError):
    """Base: the PACS could not be reached or did not do what was asked."""

    message = "The PACS could not complete the request."
    reason = "pacs"

    def __init__(self, message: str | None = None, *, detail: str = "", partial: RetrieveResult | None = None) -> None:
        super().__init__(message, detail=detail)
        #: What a retrieval had already written when it stopped (complete files only), or None.
        self.partial = partial


class PacsInputError(PacsError):
    """A server address, a date range or a UID that is not well formed (nothing was sent)."""

    message = "The PACS request is not well formed."
    reason = "input"


class PacsHostNotFoundError(PacsError):
    message = "The PACS host name could not be found; check its spelling or use its IP address."
    reason = "host"


class PacsConnectionRefusedError(PacsError):
    message = "The PACS refused the connection; check the port number and that its DICOM service is running."
    reason = "port"


class PacsTimeoutError(PacsError):
    """No answer in time. ``which``: "connect" (server down or unreachable), "idle" (it stopped
    answering) or "total" (the whole operation took longer than allowed)."""

    message = "The PACS did not answer in time; check that it is running and reachable from this computer."
    reason = "timeout"

    def __init__(self, message: str | None = None, *, which: str = "idle", seconds: float = 0.0, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.which = which
        self.seconds = seconds


class PacsAssociationRejectedError(PacsError):
    """The PACS answered but turned the connection down; ``result``, ``source``, ``diagnostic`` are
    the A-ASSOCIATE-RJ fields (PS3.8 9.3.4) when known."""

    message = "The PACS rejected the connection; ask its administrator to allow MedKD's AE title."
    reason = "rejected"

    def __init__(self, message: str | None = None, *, result: int | None = None, source: int | None = None,
                 diagnostic: int | None = None, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.result, self.source, self.diagnostic = result, source, diagnostic


class PacsCalledAETitleError(PacsAssociationRejectedError):
    message = "The PACS does not answer to this AE title; check the server's AE title in the settings (it is case-sensitive)."
    reason = "called-aet"


class PacsCallingAETitleError(PacsAssociationRejectedError):
    message = "The PACS does not know MedKD's AE title; ask its administrator to add it, or correct it in the settings."
    reason = "calling-aet"


class PacsAbortedError(PacsError):
    message = "The PACS broke off the connection; try again, and tell its administrator if it happens again."
    reason = "aborted"


class PacsServiceNotSupportedError(PacsError):
    message = "The PACS does not offer this service to MedKD."
    reason = "service"


class PacsMoveDestinationError(PacsError):
    message = ("The PACS could not send the images to MedKD; ask its administrator to register MedKD's AE title "
               "with this computer's address and receiving port.")
    reason = "move-destination"


class PacsLocalPortError(PacsError):
    message = "MedKD could not listen for images on its receiving port; choose another port in the settings."
    reason = "local-port"


class PacsNotFoundError(PacsError):
    message = "The PACS holds no study or series with this UID."
    reason = "not-found"


class PacsRequestFailedError(PacsError):
    """The PACS answered with a failure status (``status``: the DIMSE status or HTTP code)."""

    message = "The PACS could not carry out the request."
    reason = "status"

    def __init__(self, message: str | None = None, *, status: int | None = None, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.status = status


class PacsAuthError(PacsRequestFailedError):
    message = "The PACS's web service refused access; check the user name and password in the settings."
    reason = "auth"


class PacsCacheError(PacsError):
    message = "The retrieved images could not be saved on this computer; check the free disk space."
    reason = "cache"


class PacsCancelledError(PacsError):
    message = "The transfer was cancelled."
    reason = "cancelled"
