"""Decide what a file is from its bytes, never its name.

Why: hospital exports drop or mangle extensions (``IM0001``, ``.dcm`` on a JPEG), and a
NIfTI may be gzipped under any name. Reading 1 KiB of magic numbers is cheap and lets
the dispatcher hand each file to exactly one reader.
"""
from __future__ import annotations

import gzip
import struct
import zlib
from enum import Enum
from pathlib import Path

from .errors import CorruptStudyError, StudyLoadError, UnsupportedStudyError


class FileKind(str, Enum):
    DICOM = "dicom"
    NIFTI = "nifti"
    PNG = "png"
    JPEG = "jpeg"
    TIFF = "tiff"


_RASTER_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", FileKind.PNG),
    (b"\xff\xd8\xff", FileKind.JPEG),
    (b"II*\x00", FileKind.TIFF),
    (b"MM\x00*", FileKind.TIFF),
    (b"II+\x00", FileKind.TIFF),  # BigTIFF
    (b"MM\x00+", FileKind.TIFF),
)

# DICOM data sets written without the 128-byte preamble and "DICM" (older or raw exports)
# start with a group-0x0008 or -0x0002 element; the VR check rules out random binaries.
_DICOM_GROUPS = (0x0002, 0x0008)
_VRS = {b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"OB",
        b"OD", b"OF", b"OL", b"OW", b"PN", b"SH", b"SL", b"SQ", b"SS", b"ST", b"TM", b"UC", b"UI",
        b"UL", b"UN", b"UR", b"US", b"UT", b"OV", b"SV", b"UV"}


def _looks_like_raw_dicom(head: bytes) -> bool:
    if len(head) < 8:
        return False
    group, element = struct.unpack("<HH", head[:4])
    if group not in _DICOM_GROUPS:
        return False
    if head[4:6] in _VRS:  # explicit VR
        return True
    (length,) = struct.unpack("<I", head[4:8])  # implicit VR: a plausible element length
    return element <= 0x0020 and length < 1 << 16


def _is_nifti_header(head: bytes) -> bool:
    if len(head) < 348:
        return False
    for order in "<>":
        (sizeof_hdr,) = struct.unpack(order + "i", head[:4])
        if sizeof_hdr == 348 and head[344:347] in (b"n+1", b"ni1"):
            return True
        if sizeof_hdr == 540 and head[4:7] in (b"n+2", b"ni2"):
            return True
    return False


def sniff(path: Path) -> FileKind:
    """Return the kind of study file at *path*, or raise UnsupportedStudyError."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(1024)
    except IsADirectoryError:
        raise UnsupportedStudyError("This is a folder; open it as a DICOM series folder.", path=str(path))
    except OSError as exc:
        raise StudyLoadError("The file could not be read (check that it exists and you may open it).",
                             detail=type(exc).__name__, path=str(path)) from None
    if not head:
        raise CorruptStudyError("The file is empty.", path=str(path))
    if len(head) >= 132 and head[128:132] == b"DICM":
        return FileKind.DICOM
    for magic, kind in _RASTER_MAGIC:
        if head.startswith(magic):
            return kind
    if head[:2] == b"\x1f\x8b":
        try:
            with gzip.open(path, "rb") as gz:  # decompresses only what is read
                inner = gz.read(544)
        except (OSError, EOFError, zlib.error):
            raise CorruptStudyError("The compressed file is damaged and could not be read.", path=str(path)) from None
        if _is_nifti_header(inner):
            return FileKind.NIFTI
        raise UnsupportedStudyError(path=str(path))
    if _is_nifti_header(head):
        return FileKind.NIFTI
    if _looks_like_raw_dicom(head):
        return FileKind.DICOM
    raise UnsupportedStudyError(path=str(path))

