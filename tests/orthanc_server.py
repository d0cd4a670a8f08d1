"""A real, throwaway Orthanc PACS for the tests (and scripts/bench_pacs.py).

Why a real server: what matters in PACS work is what a real PACS does with our associations
(rejections, role selection, C-MOVE destinations, transfer syntaxes), which a mock would only
restate. Orthanc is the Debian package ``orthanc`` (binary ``Orthanc``, in /usr/sbin); it runs
here as a child process with its own JSON config, on loopback, on free ports, with storage in a
temporary folder; the distribution's service, if any, is never used. Orthanc's DICOMweb plugin
(``orthanc-dicomweb``) is loaded when installed.

Use from any test folder (tests/ is on ``sys.path``; the session fixture ``orthanc`` is
re-exported by tests/conftest.py)::

    def test_something(orthanc):                 # skips when Orthanc is missing
        server = orthanc.server()                 # PacsServer ORTHANC@127.0.0.1:<port>
        settings = orthanc.settings(tmp_path)     # PacsSettings: our AE title, move port, cache
        study = orthanc.item("cr_chest")          # what was uploaded: files and UIDs

The fixture fills the server once per session (real files from ../shared/data and the bundled
samples; see CATALOGUE); tests that change the server's content upload their own copies.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from testdata import SAMPLES, SHARED_DATA

ORTHANC_AET = "ORTHANC"
OUR_AET = "MEDKD"
PLUGIN_DIRS = (Path("/usr/share/orthanc/plugins"), Path("/usr/lib/orthanc/plugins"))
START_S = 30.0

#: name -> files (relative to ../shared/data, or absolute), uploaded by the session fixture.
CATALOGUE: dict[str, list[Path]] = {
    "cr_chest": [SHARED_DATA / "dicom/chest/cr_chest_pa_siim_nih_jpeg_baseline.dcm"],  # CR, JPEG baseline
    "dx_chest": [SHARED_DATA / "dicom/chest/dx_chest_nih_gcp_no_finding.dcm"],  # DX, no study date
    "mr_series": sorted((SHARED_DATA / "dicom/series/siemens_mr_memprage_babymri_6sl").glob("*.dcm")),
    "dti_series": sorted((SHARED_DATA / "dicom/series/canon_mr_dti_ax_vol1_40sl").glob("*.dcm")),
    "enhanced_mr": [SHARED_DATA / "dicom/misc/enhanced_multiframe/emri_small.dcm"],  # multi-frame
    "us_multiframe": [SHARED_DATA / "dicom/misc/enhanced_multiframe/OBXXXX1A_rle_2frame.dcm"],  # RLE, 2 frames
    "mr_small": [SHARED_DATA / "dicom/misc/single/pydicom_MR_small.dcm"],
    "mosaic_sample": sorted((SAMPLES / "mr_brain_epi_mosaic_series").iterdir()),
}


class OrthancUnavailable(RuntimeError):
    """Orthanc is not installed or did not start (the message is the skip reason)."""


def find_orthanc() -> str | None:
    """``$MEDKD_ORTHANC`` (a path, or "none" to skip the PACS tests), else ``Orthanc`` on PATH or in /usr/sbin."""
    chosen = os.environ.get("MEDKD_ORTHANC")
    if chosen:
        return None if chosen.lower() == "none" else chosen
    found = shutil.which("Orthanc")
    if found:
        return found
    for candidate in ("/usr/sbin/Orthanc", "/usr/bin/Orthanc"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def dicomweb_plugin() -> Path | None:
    for folder in PLUGIN_DIRS:
        lib = folder / "libOrthancDicomWeb.so"
        if lib.is_file():
            return lib
    return None


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Uploaded:
    """One catalogue entry as the server holds it."""

    files: list[Path]
    study_uid: str
    series_uid: str
    sop_uids: list[str]
    patient_id: str
    patient_name: str


@dataclass
class Orthanc:
    """A running Orthanc. ``move_port`` is where it sends C-MOVE results for ``OUR_AET``."""

    root: Path
    binary: str
    http_port: int = 0
    dicom_port: int = 0
    move_port: int = 0
    nodelay: bool = True
    extra_modalities: dict[str, tuple[str, int]] = field(default_factory=dict)
    has_dicomweb: bool = False
    config_extra: dict = field(default_factory=dict)  # Orthanc settings a test changes (e.g. a refused syntax)
    uploaded: dict[str, Uploaded] = field(default_factory=dict)
    _proc: subprocess.Popen | None = None

    # ---- life cycle

    def start(self) -> Orthanc:
        self.http_port, self.dicom_port = free_port(), free_port()
        self.move_port = self.move_port or free_port()
        storage = self.root / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        modalities = {"medkd": [OUR_AET, "127.0.0.1", self.move_port]}
        modalities.update({name.lower(): [name, host, port] for name, (host, port) in self.extra_modalities.items()})
        config = {
            "Name": "MedKD test PACS",
            "StorageDirectory": str(storage), "IndexDirectory": str(storage),
            "HttpPort": self.http_port, "DicomPort": self.dicom_port, "DicomAet": ORTHANC_AET,
            "RemoteAccessAllowed": False, "AuthenticationEnabled": False, "SslEnabled": False,
            "DicomCheckCalledAet": True,  # so a wrong called AE title is rejected, as hospital PACS do
            "DicomAlwaysAllowEcho": True, "DicomAlwaysAllowFind": True, "DicomAlwaysAllowGet": True,
            "DicomAlwaysAllowMove": True, "DicomAlwaysAllowStore": True,
            "DicomModalities": modalities, "DicomModalitiesInDatabase": False,
            "DicomScuTimeout": 10, "DicomScpTimeout": 30, "DicomAssociationCloseDelay": 0,
            "UnknownSopClassAccepted": True, "StorageCompression": False,
            "MaximumStorageCacheSize": 0,  # a deleted storage file must fail its retrieval (partial test)
            "SaveJobs": False, "OrthancExplorerEnabled": False, "WebDavEnabled": False,
            "HttpThreadsCount": 8, "ConcurrentJobs": 1, "StableAge": 1, "SynchronousCMove": True,
            "Plugins": [],
        }
        config.update(self.config_extra)
        plugin = dicomweb_plugin()
        if plugin is not None and "Plugins" not in self.config_extra:
            config["Plugins"] = [str(plugin)]
            config["DicomWeb"] = {"Enable": True, "Root": "/dicom-web/", "EnableWado": False,
                                  "Host": f"127.0.0.1:{self.http_port}", "Ssl": False}
        path = self.root / "orthanc.json"
        path.write_text(json.dumps(config, indent=1))
        env = dict(os.environ)
        if self.nodelay:
            # DCMTK (Orthanc's DICOM stack) keeps Nagle's algorithm on unless told otherwise: every
            # DIMSE request then waits ~40 ms for a delayed ACK (scripts/bench_pacs.py measures both).
            env["TCP_NODELAY"] = "1"
        log = open(self.root / "orthanc.log", "wb")
        try:
            self._proc = subprocess.Popen([self.binary, str(path)], stdout=log, stderr=subprocess.STDOUT,
                                          cwd=self.root, env=env)
        except OSError as exc:
            raise OrthancUnavailable(f"Orthanc could not be started ({self.binary}: {exc.strerror})") from None
        finally:
            log.close()
        deadline = time.monotonic() + START_S
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise OrthancUnavailable(f"Orthanc exited at start: {self.log_tail()}")
            try:
                system = self.rest("GET", "/system")
                plugins = self.rest("GET", "/plugins")
                self.has_dicomweb = "dicom-web" in plugins
                if system.get("DicomPort") == self.dicom_port and _listening(self.dicom_port):
                    return self
            except (OSError, ValueError):
                pass
            time.sleep(0.1)
        self.stop()
        raise OrthancUnavailable(f"Orthanc did not answer within {START_S:g} s: {self.log_tail()}")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def log_tail(self, n: int = 800) -> str:
        try:
            return (self.root / "orthanc.log").read_text(errors="replace")[-n:].strip()
        except OSError:
            return ""

    # ---- what MedKD is given

    def server(self, ae_title: str = ORTHANC_AET, port: int | None = None):
        from medkd_desktop.pacs import PacsServer

        return PacsServer(name="test Orthanc", ae_title=ae_title, host="127.0.0.1", port=port or self.dicom_port)

    def address(self) -> str:
        return f"{ORTHANC_AET}@127.0.0.1:{self.dicom_port}"

    @property
    def dicomweb_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/dicom-web"

    def dicomweb_server(self):
        from medkd_desktop.pacs import PacsServer

        if not self.has_dicomweb:
            pytest.skip("Orthanc's DICOMweb plugin is not installed (apt-get install orthanc-dicomweb)")
        return PacsServer.parse(self.dicomweb_url, name="test Orthanc (DICOMweb)")

    def settings(self, cache_dir: Path, **overrides):
        from medkd_desktop.pacs import PacsSettings

        values = dict(ae_title=OUR_AET, idle_timeout=15.0, total_timeout=120.0, move_port=self.move_port,
                      move_bind="127.0.0.1", cache_dir=Path(cache_dir))
        values.update(overrides)
        return PacsSettings(**values)

    def item(self, name: str) -> Uploaded:
        if name not in self.uploaded:
            pytest.skip(f"test data {name!r} was not uploaded (../shared/data missing?)")
        return self.uploaded[name]

    # ---- Orthanc's REST API

    def rest(self, method: str, path: str, body: bytes | None = None, *, raw: bool = False):
        request = urllib.request.Request(f"http://127.0.0.1:{self.http_port}{path}", data=body, method=method)
        if body is not None:
            request.add_header("Content-Type", "application/dicom")
        with urllib.request.urlopen(request, timeout=60) as response:
            data = response.read()
        return data if raw else json.loads(data or b"null")

    def upload(self, path: Path) -> dict:
        """POST /instances; returns Orthanc's answer (ID, ParentSeries, ...)."""
        return self.rest("POST", "/instances", Path(path).read_bytes())

    def lookup(self, uid: str) -> str:
        """Orthanc's own ID of the resource with DICOM *uid*."""
        found = self.rest("POST", "/tools/lookup", uid.encode())
        return found[0]["ID"]

    def storage_file(self, sop_uid: str) -> Path:
        """Where Orthanc keeps the file of instance *sop_uid* (its attachment UUID, two folder levels)."""
        info = self.rest("GET", f"/instances/{self.lookup(sop_uid)}/attachments/dicom/info")
        uuid = info["Uuid"]
        return self.root / "storage" / uuid[:2] / uuid[2:4] / uuid

    def series_of_study(self, study_uid: str) -> list[dict]:
        return [self.rest("GET", f"/series/{s}") for s in self.rest("GET", f"/studies/{self.lookup(study_uid)}")["Series"]]

    def fill(self, catalogue: dict[str, list[Path]] = CATALOGUE) -> None:
        import pydicom

        for name, files in catalogue.items():
            files = [f for f in files if f.is_file()]
            if not files:
                continue
            sops = []
            for f in files:
                self.upload(f)
                sops.append(str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID))
            ds = pydicom.dcmread(files[0], stop_before_pixels=True)
            self.uploaded[name] = Uploaded(files, str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), sops,
                                           str(ds.get("PatientID", "")), str(ds.get("PatientName", "")))


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def start_orthanc(root: Path, **kwargs) -> Orthanc:
    """A started Orthanc in *root*, or :class:`OrthancUnavailable` with the reason."""
    binary = find_orthanc()
    if binary is None:
        raise OrthancUnavailable("Orthanc is not installed (apt-get install orthanc orthanc-dicomweb) "
                                 "or MEDKD_ORTHANC=none")
    return Orthanc(root=Path(root), binary=binary, **kwargs).start()


def report_sr(reference: Path, out: Path) -> Path:
    """A Basic Text SR in the study of *reference* (a reader's note, no pixel data): what a PACS
    study holds besides images, for the "non-image instances are kept aside" test."""
    import datetime as dt

    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    ref = pydicom.dcmread(reference, stop_before_pixels=True)
    ds = Dataset()
    for key in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyDate",
                "StudyTime", "StudyID", "StudyDescription", "AccessionNumber", "ReferringPhysicianName",
                "SpecificCharacterSet"):
        if key in ref:
            setattr(ds, key, ref.get(key))
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"  # Basic Text SR
    ds.SOPInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "SR", 900, 1
    ds.Manufacturer = "MedKD tests"
    now = dt.datetime.now()
    ds.ContentDate, ds.ContentTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    ds.CompletionFlag, ds.VerificationFlag = "COMPLETE", "UNVERIFIED"
    ds.ValueType, ds.ContinuityOfContent = "CONTAINER", "SEPARATE"
    title = Dataset()
    title.CodeValue, title.CodingSchemeDesignator, title.CodeMeaning = "11528-7", "LN", "Radiology Report"
    ds.ConceptNameCodeSequence = [title]
    item = Dataset()
    item.RelationshipType, item.ValueType = "CONTAINS", "TEXT"
    finding = Dataset()
    finding.CodeValue, finding.CodingSchemeDesignator, finding.CodeMeaning = "121071", "DCM", "Finding"
    item.ConceptNameCodeSequence = [finding]
    item.TextValue = "Test note for the PACS tests."
    ds.ContentSequence = [item]
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    ds.save_as(out, enforce_file_format=True)
    return out


def assert_same_pixels(received: Path, original: Path) -> None:
    """*received* is *original* as the PACS stores it: same instance, same transfer syntax, same pixels."""
    import numpy as np
    import pydicom

    got, want = pydicom.dcmread(received), pydicom.dcmread(original)
    assert got.SOPInstanceUID == want.SOPInstanceUID
    assert got.file_meta.TransferSyntaxUID == want.file_meta.TransferSyntaxUID  # sent as stored, not transcoded
    assert got.PixelData == want.PixelData
    assert np.array_equal(got.pixel_array, want.pixel_array)


def copy_as_new_series(source: Path, out_dir: Path, n: int, *, study_uid: str | None = None) -> list[Path]:
    """*n* copies of one real DICOM file as one new series (new study unless *study_uid*), with
    new UIDs and instance numbers: a series of any length from one small real image."""
    import pydicom
    from pydicom.uid import generate_uid

    out_dir.mkdir(parents=True, exist_ok=True)
    template = pydicom.dcmread(source)
    study, series = study_uid or generate_uid(), generate_uid()
    paths = []
    for i in range(n):
        ds = template.copy()
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = i + 1
        if "ImagePositionPatient" in ds and len(ds.ImagePositionPatient) == 3:
            x, y, z = (float(v) for v in ds.ImagePositionPatient)
            ds.ImagePositionPatient = [x, y, z + i * float(ds.get("SliceThickness", 1) or 1)]
        path = out_dir / f"{i + 1:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory):
    """A running, filled Orthanc for the whole session (skips when it cannot be started)."""
    root = tmp_path_factory.mktemp("orthanc")
    try:
        server = start_orthanc(root)
    except OrthancUnavailable as exc:
        pytest.skip(str(exc))
    try:
        server.fill()
        mr = server.uploaded.get("mr_series")
        if mr is not None:
            server.upload(report_sr(mr.files[0], root / "report_sr.dcm"))
        yield server
    finally:
        server.stop()
