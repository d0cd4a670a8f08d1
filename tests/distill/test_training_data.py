"""Training images come through open_study; fMRI maps are rendered by a process pool."""
from __future__ import annotations

import pytest
import torch
from testdata import shared_path

from medkd_desktop.distill import data
from medkd_desktop.models.preprocess import InputSpec

FMRI_SPEC = InputSpec.from_dict({"size": 64, "channels": 3, "crop": "stretch", "fmri_map": "amplitude"})


def test_fmri_maps_rendered_in_parallel_equal_the_serial_render(monkeypatch):
    manifest = shared_path("fmri-asd", "manifest.csv")
    samples = data.read_manifest(manifest, FMRI_SPEC, "test")[:4]
    monkeypatch.setattr(data, "PARALLEL_MIN_MAPS", 2)
    parallel = data.CachedSplit(samples, ["ASD", "TC"], FMRI_SPEC, cache_dir=None)
    monkeypatch.setattr(data, "PARALLEL_MIN_MAPS", 10**9)
    serial = data.CachedSplit(samples, ["ASD", "TC"], FMRI_SPEC, cache_dir=None)
    assert parallel.x.shape == (4, 3, 64, 64)
    assert torch.equal(parallel.x, serial.x)
    assert parallel.x.float().std() > 0.05  # real glass brains, not blank frames


def test_an_unreadable_training_image_names_the_file(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (tmp_path / "manifest.csv").write_text("path,label,patient_id,split,source\nbroken.jpg,a,p1,train,x\n")
    spec = InputSpec.from_dict({"size": 32, "channels": 3})
    samples = data.read_manifest(tmp_path / "manifest.csv", spec)
    with pytest.raises(data.StudyLoadError, match="broken.jpg"):
        data.CachedSplit(samples, ["a"], spec, cache_dir=None)
