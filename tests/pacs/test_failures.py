"""Each way a PACS connection fails, as the user meets it: a typed error whose sentence names the fix.

Bounded: every test sets short time-outs and asserts how long the failure took to surface.
"""
from __future__ import annotations

import socket
import threading
import time

import pytest
from orthanc_server import free_port

from medkd_desktop.pacs import (DimseClient, PacsCalledAETitleError, PacsCallingAETitleError, PacsCancelledError,
                                PacsConnectionRefusedError, PacsLocalPortError, PacsMoveDestinationError,
                                PacsNotFoundError, PacsServer, PacsSettings, PacsTimeoutError, open_client)

UNKNOWN_UID = "1.2.826.0.1.3680043.8.498.1"


class SilentServer:
    """A TCP server on loopback that accepts every connection and never says a word: a PACS that
    hangs, or a port that is not a DICOM service."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.held.append(conn)

    def __enter__(self) -> SilentServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        for conn in self.held:
            conn.close()
        self.sock.close()


def settings(tmp_path, **kw) -> PacsSettings:
    return PacsSettings(cache_dir=tmp_path, move_bind="127.0.0.1", **kw)


def test_wrong_called_ae_title_is_rejected_with_its_fix(orthanc, tmp_path):
    client = DimseClient(orthanc.server(ae_title="NOT_ORTHANC"), orthanc.settings(tmp_path))
    with pytest.raises(PacsCalledAETitleError) as info:
        client.echo()
    exc = info.value
    assert exc.reason == "called-aet" and (exc.result, exc.source, exc.diagnostic) == (1, 1, 7)
    assert "'NOT_ORTHANC'" in str(exc) and "AE title in the settings" in str(exc)


def test_closed_port_is_connection_refused(tmp_path):
    client = DimseClient(PacsServer(ae_title="ANY", host="127.0.0.1", port=free_port()), settings(tmp_path))
    started = time.monotonic()
    with pytest.raises(PacsConnectionRefusedError, match="check the port number"):
        client.echo()
    assert time.monotonic() - started < 5


def test_unknown_move_destination(orthanc, tmp_path):
    mr = orthanc.item("mr_small")
    client = DimseClient(orthanc.server(), orthanc.settings(tmp_path, ae_title="STRANGER", move_port=free_port()))
    with pytest.raises(PacsMoveDestinationError) as info:
        client.retrieve(mr.study_uid, method="move")
    assert info.value.reason == "move-destination" and "'STRANGER'" in str(info.value)
    assert "register" in str(info.value) and not list(tmp_path.rglob("*.dcm"))


def test_a_busy_receiving_port_is_named(orthanc, tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        client = DimseClient(orthanc.server(), orthanc.settings(tmp_path, move_port=busy.getsockname()[1]))
        with pytest.raises(PacsLocalPortError, match="another program uses it"):
            client.retrieve(orthanc.item("mr_small").study_uid, method="move")


def test_an_unknown_study_is_not_found(orthanc, tmp_path):
    for method in ("get", "move"):
        with pytest.raises(PacsNotFoundError):
            DimseClient(orthanc.server(), orthanc.settings(tmp_path)).retrieve(UNKNOWN_UID, method=method)


def test_a_silent_server_times_out_on_the_idle_limit(tmp_path):
    with SilentServer() as silent:
        client = DimseClient(PacsServer(ae_title="SILENT", host="127.0.0.1", port=silent.port),
                             settings(tmp_path, idle_timeout=0.5, total_timeout=None))
        started = time.monotonic()
        with pytest.raises(PacsTimeoutError) as info:
            client.echo()
        elapsed = time.monotonic() - started
    assert info.value.which == "idle" and "did not answer within 0.5 s" in str(info.value)
    assert 0.4 < elapsed < 3


def test_a_silent_server_times_out_on_the_total_limit(tmp_path):
    with SilentServer() as silent:
        client = DimseClient(PacsServer(ae_title="SILENT", host="127.0.0.1", port=silent.port),
                             settings(tmp_path, idle_timeout=30, total_timeout=0.6))
        started = time.monotonic()
        with pytest.raises(PacsTimeoutError) as info:
            client.find_studies()
        elapsed = time.monotonic() - started
    assert info.value.which == "total" and "0.6 s allowed" in str(info.value)
    assert 0.5 < elapsed < 3


def test_cancel_while_a_silent_server_keeps_us_waiting(tmp_path):
    with SilentServer() as silent:
        client = DimseClient(PacsServer(ae_title="SILENT", host="127.0.0.1", port=silent.port),
                             settings(tmp_path, idle_timeout=1.0, total_timeout=None))
        started = time.monotonic()
        with pytest.raises(PacsCancelledError):
            client.echo(cancel=lambda: time.monotonic() - started > 0.3)
        assert time.monotonic() - started < 3.5


def test_a_silent_dicomweb_server_times_out(tmp_path):
    with SilentServer() as silent:
        client = open_client(f"http://127.0.0.1:{silent.port}/dicom-web", settings(tmp_path, idle_timeout=0.5))
        started = time.monotonic()
        with pytest.raises(PacsTimeoutError) as info:
            client.echo()
        assert info.value.which == "idle" and time.monotonic() - started < 3


def test_dicomweb_closed_port_and_wrong_path(orthanc, tmp_path):
    with pytest.raises(PacsConnectionRefusedError):
        open_client(f"http://127.0.0.1:{free_port()}/dicom-web", settings(tmp_path, idle_timeout=2)).echo()
    if orthanc.has_dicomweb:
        with pytest.raises(PacsNotFoundError, match="/dicom-web"):
            open_client(f"http://127.0.0.1:{orthanc.http_port}/not-dicom-web", settings(tmp_path)).echo()


def test_an_unknown_calling_ae_title_is_named(tmp_path):
    # Orthanc accepts any calling AE title; many hospital PACS do not. A pynetdicom SCP that only
    # knows "SOMEONE" stands in for them (loopback, stopped at the end).
    from pynetdicom import AE

    scp = AE(ae_title="STRICT")
    scp.add_supported_context("1.2.840.10008.1.1")
    scp.require_calling_aet = ["SOMEONE"]
    port = free_port()
    server = scp.start_server(("127.0.0.1", port), block=False)
    try:
        client = DimseClient(PacsServer(ae_title="STRICT", host="127.0.0.1", port=port), settings(tmp_path))
        with pytest.raises(PacsCallingAETitleError) as info:
            client.echo()
    finally:
        server.shutdown()
    assert "does not know MedKD's AE title 'MEDKD'" in str(info.value) and info.value.diagnostic == 3


def test_a_transfer_syntax_the_pacs_refuses_is_named_per_file(tmp_path):
    """A PACS configured to refuse JPEG (Orthanc's JpegTransferSyntaxAccepted) stores the other file
    of the same send and says which file it refused and why."""
    from orthanc_server import OrthancUnavailable, start_orthanc

    from testdata import shared_path

    jpeg = shared_path("dicom", "chest", "cr_chest_pa_siim_nih_jpeg_baseline.dcm")  # JPEG baseline
    plain = shared_path("dicom", "misc", "single", "pydicom_MR_small.dcm")  # explicit VR little endian
    try:
        strict = start_orthanc(tmp_path / "strict", config_extra={"JpegTransferSyntaxAccepted": False, "Plugins": []})
    except OrthancUnavailable as exc:
        pytest.skip(str(exc))
    try:
        result = DimseClient(strict.server(), strict.settings(tmp_path / "cache")).store([jpeg, plain])
    finally:
        strict.stop()
    assert len(result.stored) == 1 and list(result.failed) == [str(jpeg)]
    assert "does not accept this kind of file" in result.failed[str(jpeg)]
