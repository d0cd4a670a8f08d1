"""Where retrieved instances land: ``<root>/<study_uid>/<series_uid>/<sop_uid>.dcm``, written atomically.

Why this layout: ``studies.open_study`` opens a folder as a study (the largest series, the others
listed), so the study folder is what the window opens and a series folder what it opens for one
series. Files without pixel data (structured reports, presentation states, key object
selections) go to ``<study_uid>/non-image/<series_uid>/``, so they are kept but never counted as
broken images. Each file is written to a hidden temporary name and renamed: a cancelled or
failed transfer leaves only whole files (and at worst a hidden ``.part`` file that readers skip).
Folder names come from UIDs the server sent; anything that is not a plain UID is hashed, so a
hostile answer cannot write outside the cache.
"""
from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
import threading
from pathlib import Path

from pydicom.dataset import Dataset

from .errors import PacsCacheError

NON_IMAGE_DIR = "non-image"
_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_SAFE_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")


def default_cache_dir() -> Path:
    """The per-user cache of retrieved studies (platformdirs), e.g. ``~/.cache/medkd-desktop/pacs``."""
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("medkd-desktop", appauthor=False)) / "pacs"


def safe_name(uid: str) -> str:
    uid = (uid or "").strip()
    if _SAFE_UID.match(uid) and len(uid) <= 64:
        return uid
    return "x" + hashlib.sha256(uid.encode("utf-8", "replace")).hexdigest()[:32]


def has_pixel_data(ds: Dataset) -> bool:
    return any(k in ds for k in _PIXEL_KEYWORDS)


def write_atomic(path: Path, data: bytes) -> Path:
    """*data* to *path* through a hidden temporary file in the same folder, then one rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def encode(ds: Dataset) -> bytes:
    """A dataset that came without its file bytes (DICOMweb) as a Part 10 file."""
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


class StudyCache:
    """The instances of one retrieval: writes them and remembers what was written (thread-safe:
    a C-MOVE delivers on the storage SCP's threads)."""

    def __init__(self, root: Path, study_uid: str) -> None:
        self.folder = Path(root) / safe_name(study_uid)
        self._lock = threading.Lock()
        self.images: list[Path] = []
        self.non_images: list[Path] = []
        self.received_uids: set[str] = set()

    def path_for(self, series_uid: str, sop_uid: str, image: bool) -> Path:
        base = self.folder if image else self.folder / NON_IMAGE_DIR
        return base / safe_name(series_uid) / f"{safe_name(sop_uid)}.dcm"

    def add(self, ds: Dataset, data: bytes | None = None) -> Path:
        """Write one instance (*data*: its Part 10 bytes when already encoded); returns its path."""
        image = has_pixel_data(ds)
        sop_uid = str(ds.get("SOPInstanceUID", "") or "")
        path = self.path_for(str(ds.get("SeriesInstanceUID", "") or ""), sop_uid, image)
        try:
            write_atomic(path, data if data is not None else encode(ds))
        except OSError as exc:
            raise PacsCacheError(detail=f"{type(exc).__name__}: {exc.strerror}") from None
        with self._lock:
            if sop_uid not in self.received_uids:  # a PACS may send an instance twice
                (self.images if image else self.non_images).append(path)
                self.received_uids.add(sop_uid)
        return path

    @property
    def received(self) -> int:
        with self._lock:
            return len(self.images) + len(self.non_images)
