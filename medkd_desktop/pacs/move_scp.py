"""A storage SCP that lives only as long as one C-MOVE: where a "move-only" PACS sends the images.

Why short-lived: a C-MOVE makes the PACS open its own association back to us (our AE title at
this computer's address and receiving port, as registered by the PACS administrator). Listening
only during the retrieval keeps the port closed the rest of the time and needs no service.
It accepts associations addressed to our AE title only, any storage SOP class, any transfer
syntax (files are kept as the PACS stores them).
"""
from __future__ import annotations

import errno
import logging
import socketserver
import threading
import time
from collections.abc import Callable

from .dimse_assoc import MAX_PDU, no_delay
from .errors import PacsLocalPortError
from .server import PacsSettings
from .supervise import GRACE_S

log = logging.getLogger(__name__)
POLL_S = 0.05


class StorageSCP:
    """``with StorageSCP(settings, on_store):`` listens on ``settings.move_bind:move_port``.
    ``connected`` is set once the PACS has opened an association to it."""

    def __init__(self, settings: PacsSettings, on_store: Callable) -> None:
        self.settings = settings
        self.on_store = on_store
        self.connected = threading.Event()
        self._server = None

    def __enter__(self) -> StorageSCP:
        from pynetdicom import ALL_TRANSFER_SYNTAXES, AE, AllStoragePresentationContexts, evt
        from pynetdicom.transport import ThreadedAssociationServer

        ae = AE(ae_title=self.settings.ae_title)
        ae.require_called_aet = True
        ae.maximum_pdu_size = MAX_PDU
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = self.settings.idle_timeout
        for cx in AllStoragePresentationContexts:
            ae.add_supported_context(cx.abstract_syntax, ALL_TRANSFER_SYNTAXES)
        handlers = [(evt.EVT_C_STORE, self.on_store), (evt.EVT_CONN_OPEN, no_delay),
                    (evt.EVT_ESTABLISHED, lambda event: self.connected.set())]
        try:
            self._server = ae.make_server((self.settings.move_bind, self.settings.move_port), evt_handlers=handlers,
                                          server_class=ThreadedAssociationServer)
        except OSError as exc:
            in_use = exc.errno == errno.EADDRINUSE
            raise PacsLocalPortError(
                f"MedKD could not listen for images on port {self.settings.move_port} "
                f"({'another program uses it' if in_use else 'the system refused it'}); choose another receiving "
                "port in the settings and tell the PACS administrator.",
                detail=f"OSError {errno.errorcode.get(exc.errno, exc.errno)}") from None
        # Our own serving thread: AE.start_server polls for shutdown every 0.5 s, which every
        # C-MOVE would wait for at its end.
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": POLL_S}, daemon=True,
                         name="medkd-storage-scp").start()
        log.debug("storage SCP listening on port %d", self.settings.move_port)
        return self

    def __exit__(self, *exc_info) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        socketserver.BaseServer.shutdown(server)  # pynetdicom's shutdown() also unregisters from AE.start_server
        deadline = time.monotonic() + GRACE_S
        while server.active_associations and time.monotonic() < deadline:  # the PACS releases after its last store
            time.sleep(POLL_S)
        for assoc in server.active_associations:  # one still sending after a cancel
            assoc.abort()
        server.server_close()
