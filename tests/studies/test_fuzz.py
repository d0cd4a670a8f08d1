"""Mutated real files: `open_study` returns a Study or raises StudyLoadError, nothing else.

Hypothesis truncates, overwrites and splices bytes of real DICOM, NIfTI and image files.
A bug here is a crash a clinician would see as the app vanishing.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from testdata import SHARED_DATA
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medkd_desktop.studies import Study, StudyLoadError, open_study

SEEDS = [
    "dicom/misc/single/pydicom_CT_small.dcm",
    "dicom/misc/single/pydicom_MR_small_RLE.dcm",
    "dicom/misc/single/pydicom_JPEG2000.dcm",
    "dicom/misc/compressed/dwv_nema-ct1_jpll.dcm",
    "dicom/misc/enhanced_multiframe/emri_small.dcm",
    "dicom/misc/transfer_syntax_siemens_mosaic/5.dcm",
    "nifti/fmri4d/nipy_functional.nii.gz",
    "nifti/fmri4d/dcmqa_nih_ge_epi_fmri_mr0004.nii",
]


def _raster_seed() -> str | None:
    root = SHARED_DATA / "histo-lc25000" / "images"
    first = next(root.rglob("*.jpg"), None) if root.exists() else None
    return str(first.relative_to(SHARED_DATA)) if first else None


SEEDS += [s for s in [_raster_seed()] if s]
AVAILABLE = [s for s in SEEDS if (SHARED_DATA / s).exists()]

mutation = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0.0, 1.0), st.just(b"")),
    st.tuples(st.just("overwrite"), st.floats(0.0, 1.0), st.binary(min_size=1, max_size=64)),
    st.tuples(st.just("insert"), st.floats(0.0, 1.0), st.binary(min_size=1, max_size=64)),
    st.tuples(st.just("header"), st.floats(0.0, 0.05), st.binary(min_size=1, max_size=16)),
)


def mutate(data: bytes, ops) -> bytes:
    for kind, where, payload in ops:
        if kind == "header":  # the first few KiB hold the fields a reader trusts most
            where = where * 20
        i = int(min(where, 1.0) * (len(data) - 1)) if data else 0
        if kind == "truncate":
            data = data[:i]
        elif kind in ("overwrite", "header"):
            data = data[:i] + payload + data[i + len(payload):]
        else:
            data = data[:i] + payload + data[i:]
    return data


@pytest.mark.skipif(not AVAILABLE, reason=f"real data not found at {SHARED_DATA}")
@pytest.mark.parametrize("seed", AVAILABLE)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(mutation, min_size=1, max_size=3))
def test_mutated_real_file_opens_or_fails_typed(seed, ops):
    original = (SHARED_DATA / seed).read_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(seed).name
        path.write_bytes(mutate(original, ops))
        try:
            study = open_study(path)
        except StudyLoadError as exc:
            assert str(exc)
            return
        assert isinstance(study, Study) and study.n_frames >= 1
