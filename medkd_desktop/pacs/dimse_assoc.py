"""Opening a DICOM association with pynetdicom, and turning each way it fails into its likely fix.

Why a module of its own: pynetdicom reports a failed association as flags (rejected, aborted),
with the A-ASSOCIATE-RJ fields on the acceptor's primitive and a refused or timed-out TCP
connect only in its log. The PACS dialog's "Test" button must say which setting is wrong, so a
failure is classified here: a rejection by its source and reason (called AE title, calling AE
title, busy), anything else by one plain TCP connect to the same address (no host, refused,
no answer), and a connection that opened but never answered as an idle time-out.
"""
from __future__ import annotations

import errno
import itertools
import logging
import socket
import time
from collections.abc import Iterable, Sequence

from pydicom import uid as uids

from .errors import (PacsAbortedError, PacsAssociationRejectedError, PacsCalledAETitleError, PacsCallingAETitleError,
                     PacsConnectionRefusedError, PacsError, PacsHostNotFoundError, PacsServiceNotSupportedError,
                     PacsTimeoutError)
from .server import PacsServer, PacsSettings
from .supervise import GRACE_S, Supervisor

log = logging.getLogger(__name__)

#: Our largest PDU: pynetdicom's default (16 KiB) makes a large image thousands of PDUs.
MAX_PDU = 1 << 20
UNCOMPRESSED = [uids.ExplicitVRLittleEndian, uids.ImplicitVRLittleEndian]
#: Offered one per presentation context, so the PACS can send each file as it stores it
#: (an acceptor picks one transfer syntax per context; a context listing many would make the
#: PACS transcode everything else).
COMPRESSED = [uids.JPEGBaseline8Bit, uids.JPEGExtended12Bit, uids.JPEGLosslessSV1, uids.JPEGLossless,
              uids.JPEGLSLossless, uids.JPEGLSNearLossless, uids.JPEG2000Lossless, uids.JPEG2000, uids.RLELossless,
              uids.DeflatedExplicitVRLittleEndian, uids.ExplicitVRBigEndian]
MAX_CONTEXTS = 128


def _configure_pynetdicom() -> None:
    """pynetdicom logs C-FIND identifiers (patient names, IDs, birth dates) at INFO: never."""
    from pynetdicom import _config

    _config.LOG_REQUEST_IDENTIFIERS = False
    _config.LOG_RESPONSE_IDENTIFIERS = False


_configure_pynetdicom()


def quiet_pynetdicom() -> None:
    """pynetdicom logs every failure at ERROR in its own words, and MedKD raises a typed error
    that says it once, for a person: its lines are detail, shown only when the app logs at INFO
    or below (``medkd -v``). Checked per call, since the app configures logging after import."""
    verbose = logging.getLogger().isEnabledFor(logging.INFO)
    logging.getLogger("pynetdicom").setLevel(logging.NOTSET if verbose else logging.CRITICAL)


def no_delay(event) -> None:
    """EVT_CONN_OPEN: send each PDU at once. pynetdicom writes a DIMSE message as several small
    sends; with Nagle's algorithm and the peer's delayed ACK every request-response pair then
    stalls about 40 ms (a C-ECHO took 45 ms on loopback, a 150-image C-GET seconds longer)."""
    try:
        event.assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (AttributeError, OSError) as exc:
        log.debug("TCP_NODELAY not set: %s", type(exc).__name__)


def make_ae(settings: PacsSettings, connect_timeout: float):
    """An AE with our title; *connect_timeout* bounds the TCP connect and the association
    request, the idle time-out every DIMSE message after that."""
    from pynetdicom import AE

    quiet_pynetdicom()
    ae = AE(ae_title=settings.ae_title)
    ae.connection_timeout = ae.acse_timeout = connect_timeout
    ae.dimse_timeout = ae.network_timeout = settings.idle_timeout
    ae.maximum_pdu_size = MAX_PDU
    return ae


def storage_contexts(sop_classes: Sequence[str], budget: int = MAX_CONTEXTS - 1) -> list[tuple[str, list[str]]]:
    """(SOP class, transfer syntaxes) presentation contexts to receive *sop_classes*: every class
    uncompressed, then each compressed syntax in its own context while *budget* allows."""
    contexts = [(c, list(UNCOMPRESSED)) for c in sop_classes[:budget]]
    for sop_class in sop_classes:
        for ts in COMPRESSED:
            if len(contexts) >= budget:
                return contexts
            contexts.append((sop_class, [ts]))
    return contexts


def timeout_for(settings: PacsSettings, sup: Supervisor | None) -> float:
    """The idle time-out, shortened to what is left of the total one while connecting."""
    remaining = sup.remaining() if sup is not None else None
    return settings.idle_timeout if remaining is None else max(0.5, min(settings.idle_timeout, remaining))


def associate(server: PacsServer, settings: PacsSettings, contexts: Iterable[tuple[str, list[str]]], *,
              sup: Supervisor | None = None, ext_neg: Sequence = (), handlers: Sequence = ()):
    """An established association, or the :class:`PacsError` that says why not."""
    timeout = timeout_for(settings, sup)
    ae = make_ae(settings, timeout)
    for abstract, syntaxes in contexts:
        ae.add_requested_context(abstract, syntaxes)
    from pynetdicom import evt

    def opened(event) -> None:
        no_delay(event)
        if sup is not None:  # a stop while the PACS has not answered the request yet: nothing to spoil
            sup.on_stop(lambda: None if event.assoc.is_established else event.assoc.abort())

    started = time.monotonic()
    assoc = ae.associate(server.host, server.port, ae_title=server.ae_title, ext_neg=list(ext_neg) or None,
                         evt_handlers=[(evt.EVT_CONN_OPEN, opened), *handlers])
    if sup is not None:
        sup.on_stop(assoc.abort, after=GRACE_S)  # after the C-CANCEL had its chance (see supervise)
    if assoc.is_established:
        return assoc
    if sup is not None and sup.remaining() is not None and (sup.remaining() or 0) < 0.05:
        raise sup.total_timeout_error()  # the connect wait was cut short by the total time-out
    raise association_error(assoc, server, settings, time.monotonic() - started, timeout)


def association_error(assoc, server: PacsServer, settings: PacsSettings, elapsed: float, timeout: float) -> PacsError:
    where = f"{server.host}:{server.port}"
    if assoc.is_rejected:
        prim = getattr(assoc.acceptor, "primitive", None)
        result, source, diagnostic = (getattr(prim, k, None) for k in ("result", "result_source", "diagnostic"))
        detail = f"A-ASSOCIATE-RJ result {result} source {source} reason {diagnostic}"
        fields = {"result": result, "source": source, "diagnostic": diagnostic, "detail": detail}
        if source == 1 and diagnostic == 7:
            return PacsCalledAETitleError(
                f"The PACS at {where} does not answer to the AE title '{server.ae_title}'; check the server's AE title "
                "in the settings (it is case-sensitive).", **fields)
        if source == 1 and diagnostic == 3:
            return PacsCallingAETitleError(
                f"The PACS at {where} does not know MedKD's AE title '{settings.ae_title}'; ask its administrator to "
                "add it, or correct MedKD's AE title in the settings.", **fields)
        if result == 2:
            return PacsAssociationRejectedError(
                f"The PACS at {where} is busy and turned the connection down for now; try again in a few minutes.",
                **fields)
        return PacsAssociationRejectedError(
            f"The PACS at {where} rejected the connection from MedKD's AE title '{settings.ae_title}'; ask its "
            "administrator to allow it.", **fields)
    if getattr(assoc, "_rejected_cx", None) and not assoc.accepted_contexts:
        return PacsServiceNotSupportedError(
            f"The PACS at {where} accepted the connection but none of the services MedKD asked for.",
            detail="no accepted presentation contexts")
    return _connect_error(server, timeout, elapsed)


def _connect_error(server: PacsServer, timeout: float, elapsed: float) -> PacsError:
    """Why an association did not come up, by one plain TCP connect to the same address."""
    where = f"{server.host}:{server.port}"
    try:
        with socket.create_connection((server.host, server.port), timeout=timeout):
            pass
    except socket.gaierror as exc:
        return PacsHostNotFoundError(f"The PACS host name '{server.host}' could not be found; check its spelling or "
                                     "use its IP address.", detail=f"gaierror {exc.errno}")
    except ConnectionRefusedError:
        return PacsConnectionRefusedError(
            f"The PACS at {where} refused the connection; check the port number and that its DICOM service is "
            "running.", detail="ECONNREFUSED")
    except (TimeoutError, socket.timeout):
        return PacsTimeoutError(
            f"The PACS at {where} did not answer within {timeout:g} s; check the host name, the network, or whether "
            "the PACS is down.", which="connect", seconds=timeout, detail="TCP connect timed out")
    except OSError as exc:
        if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN):
            return PacsTimeoutError(
                f"The PACS at {where} cannot be reached from this computer; check the network and the host name.",
                which="connect", seconds=timeout, detail=f"OSError {errno.errorcode.get(exc.errno, exc.errno)}")
        return PacsAbortedError(detail=f"OSError {exc.errno}")
    if elapsed >= timeout * 0.9:
        return PacsTimeoutError(
            f"The PACS at {where} accepted the connection but did not answer within {timeout:g} s; check that the "
            "address is a DICOM service and that the PACS is not overloaded.", which="idle", seconds=timeout,
            detail="association request unanswered")
    return PacsAbortedError(
        f"The PACS at {where} broke off the connection; check the server's AE title and port, and ask its "
        "administrator whether MedKD's AE title is allowed.", detail="association aborted by the peer")


def lost_error(server: PacsServer, settings: PacsSettings, last_activity: float) -> PacsError:
    """An established association that ended without a final response: time-out or abort."""
    idle = time.monotonic() - last_activity
    if idle >= settings.idle_timeout * 0.9:
        return PacsTimeoutError(
            f"The PACS at {server.host}:{server.port} stopped answering for {settings.idle_timeout:g} s; try again, "
            "or raise the time-out in the settings.", which="idle", seconds=settings.idle_timeout,
            detail="DIMSE response timed out")
    return PacsAbortedError(f"The PACS at {server.host}:{server.port} broke off the transfer; try again, and tell its "
                            "administrator if it happens again.", detail="association aborted during the operation")


_message_ids = itertools.count(1)


def request_id(assoc, model: str, sup: Supervisor | None) -> int:
    """A message ID for the next C-FIND / C-GET / C-MOVE on *assoc*, with a C-CANCEL of it as the
    graceful way to stop (a C-CANCEL for a request that already ended is ignored by servers)."""
    msg_id = next(_message_ids) % 65536 or 1
    context = next((cx.context_id for cx in assoc.accepted_contexts if cx.abstract_syntax == model), None)
    if sup is not None and context is not None:
        sup.on_stop(lambda: assoc.send_c_cancel(msg_id, context))
    return msg_id


def status_of(status) -> int | None:
    """The DIMSE status of a pynetdicom response (None: no response, the association is gone)."""
    value = getattr(status, "Status", None) if status is not None else None
    return int(value) if value is not None else None


def is_pending(status: int | None) -> bool:
    return status in (0xFF00, 0xFF01)


def release(assoc) -> None:
    try:
        if assoc.is_established:
            assoc.release()
    except Exception as exc:  # the server may already have gone
        log.debug("release failed: %s", type(exc).__name__)
